"""Latency statistics from raw ``perf_counter_ns`` samples.

    >>> summary([1_000_000, 2_000_000, 3_000_000])["p50"]
    2.0
"""

from __future__ import annotations

import numpy as np

NS_PER_MS = 1e6
DECIMALS = 6  # 1 ns, the clock's resolution, in ms


def summary(samples_ns: list[int]) -> dict[str, float | int]:
    """count, mean, std, min, p50, p90, p99, max in milliseconds (percentiles interpolate linearly)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / NS_PER_MS
    if ms.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    figures = {"mean": ms.mean(), "std": ms.std(), "min": ms.min(), "p50": p50, "p90": p90, "p99": p99, "max": ms.max()}
    return {"count": int(ms.size), **{k: round(float(v), DECIMALS) for k, v in figures.items()}}


def to_ms(samples_ns: list[int]) -> list[float]:
    return [round(s / NS_PER_MS, DECIMALS) for s in samples_ns]


def throughput(samples_ns: list[int]) -> float | None:
    """Inferences per second, one after another on one caller (the sum of the samples is the busy time)."""
    total = sum(samples_ns)
    return round(len(samples_ns) * 1e9 / total, 3) if total > 0 else None
