"""Latency statistics on lopsided samples, where a median, a mean and a p90 are three different numbers."""

from __future__ import annotations

import numpy as np
import pytest

from edge.device.profiler.stats import summary, throughput, to_ms

MS = 1_000_000  # ns


def test_p50_of_a_skewed_sample_is_the_median_not_the_mean():
    s = summary([1 * MS, 2 * MS, 3 * MS, 100 * MS])
    assert s["p50"] == 2.5 and s["mean"] == 26.5


def test_percentiles_interpolate_linearly_between_ranks():
    # Sorted [1, 2, 3, 100]: p90 sits at rank 0.9 * 3 = 2.7, p99 at 2.97, between 3 and 100.
    s = summary([100 * MS, 3 * MS, 1 * MS, 2 * MS])
    assert s["p90"] == pytest.approx(3 + 0.7 * 97, abs=1e-9)
    assert s["p99"] == pytest.approx(3 + 0.97 * 97, abs=1e-9)
    assert s["p90"] == 70.9 and s["p99"] == 97.09  # after rounding to the nanosecond


@pytest.mark.parametrize("samples", [
    [5, 1, 2, 3, 100, 7, 4],
    [12.5, 12.7, 12.6, 13.1, 12.4, 30.2, 12.5, 12.9, 12.8, 45.0, 12.6],
    list(np.geomspace(0.2, 80, 23)),  # a long right tail, 23 samples: p90 and p99 land between ranks
])
def test_every_field_against_numpy(samples):
    ns = [int(round(v * MS)) for v in samples]
    ms = np.asarray(ns, np.float64) / MS
    s = summary(ns)
    assert list(s) == ["count", "mean", "std", "min", "p50", "p90", "p99", "max"]
    assert s["count"] == len(ns) and isinstance(s["count"], int)
    expected = {"mean": ms.mean(), "std": ms.std(), "min": ms.min(), "p50": np.percentile(ms, 50),
                "p90": np.percentile(ms, 90), "p99": np.percentile(ms, 99), "max": ms.max()}
    for key, value in expected.items():
        assert s[key] == round(float(value), 6), key
    assert s["min"] < s["p50"] < s["mean"] < s["p90"] < s["p99"] < s["max"]  # a right-skewed sample


def test_std_is_the_population_std():
    s = summary([2 * MS, 4 * MS, 4 * MS, 4 * MS, 5 * MS, 5 * MS, 7 * MS, 9 * MS])
    assert s["std"] == 2.0 and s["mean"] == 5.0  # ddof=0; the sample std would be 2.138


def test_one_sample_and_no_sample():
    assert summary([3 * MS]) == {"count": 1, "mean": 3.0, "std": 0.0, "min": 3.0, "p50": 3.0, "p90": 3.0,
                                 "p99": 3.0, "max": 3.0}
    with pytest.raises(ValueError, match="no samples"):
        summary([])


def test_figures_are_rounded_to_the_nanosecond():
    s = summary([1, 2, 4])  # ns: a mean of 2.333 ns
    assert s["mean"] == 0.000002 and s["min"] == 0.000001 and s["max"] == 0.000004
    assert summary([1_234_567])["p50"] == 1.234567
    assert to_ms([1_500_000, 1, 2_000_000_123]) == [1.5, 0.000001, 2000.000123]


def test_throughput_is_calls_per_busy_second():
    assert throughput([2 * MS, 2 * MS]) == 500.0
    assert throughput([1 * MS, 2 * MS, 3 * MS]) == 500.0  # 3 calls in 6 ms
    assert throughput([3_000_000_000]) == 0.333  # rounded to 3 decimals
    assert throughput([7 * MS]) == 142.857
    assert throughput([1]) == 1e9
    assert throughput([0, 0]) is None and throughput([]) is None
