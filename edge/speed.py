"""A quick latency figure for export time: median of repeated runs in this process.

Only recorded when the export runs on a machine of the target's class, so that the runtime
can prefer the fastest variant that passed its gate. The careful measurement (fresh
processes, percentiles, memory, energy) is ``edge profile``'s job.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

RUNS = 30
WARMUP = 5


def latency(session: Any, feeds: dict[str, np.ndarray], threads: int, runtime: str) -> dict[str, Any]:
    for _ in range(WARMUP):
        session.run(feeds)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        session.run(feeds)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {
        "median_ms": round(float(np.median(ms)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "runs": RUNS,
        "warmup": WARMUP,
        "threads": threads or os.cpu_count(),
        "runtime": runtime,
        "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "method": "median of in-process runs at export time (edge profile measures properly)",
    }
