"""A quick latency figure for export time: median of repeated runs in this process.

Only recorded when the export runs on a machine of the target's class, so that the runtime
can prefer the fastest variant that passed its gate. The careful measurement (fresh
processes, percentiles, memory, energy) is ``edge profile``'s job; the timing loop and the
statistics are the profiler's own (``edge.device.profiler.child.timed`` and ``stats``).
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from edge.device.profiler.child import timed
from edge.device.profiler.stats import summary

RUNS = 30
WARMUP = 5


def latency(session: Any, feeds: dict[str, np.ndarray], threads: int, runtime: str) -> dict[str, Any]:
    timed(session.run, feeds, WARMUP)
    figures = summary(timed(session.run, feeds, RUNS))
    return {
        "median_ms": round(figures["p50"], 4),
        "p90_ms": round(figures["p90"], 4),
        "runs": RUNS,
        "warmup": WARMUP,
        "threads": threads or os.cpu_count(),
        "runtime": runtime,
        "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "method": "median of in-process runs at export time (edge profile measures properly)",
    }
