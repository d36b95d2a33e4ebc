"""Validation of an artifact against its reference, on hand-made runners whose answers are known.

Errors are put between the tolerance and a gross one (3x atol on one element of one sample, with
the cosine still ~1), since a test that only knows "exactly right" and "grossly wrong" cannot see
a tolerance that became 1000x looser.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.core.catalog import Tolerance
from edge.build.validate import OutputReport, ValidationReport, compare, cosine, describe

# Three samples of different sizes of value, none of them symmetric: magnitudes near 0.05, so that
# the rtol part of allclose (1e-3 * |ref|, about 5e-5) leaves the atol of 1e-4 in charge.
SAMPLES = [{"x": np.array(v, np.float64)} for v in ([0.01, -0.03, 0.05, 0.02], [0.04, 0.06, -0.02, 0.05],
                                                   [-0.05, 0.03, 0.01, 0.06])]


def _run(outputs):
    return lambda feeds: {name: fn(feeds["x"]) for name, fn in outputs.items()}


def _nudged(by: float, sample: int = 1, element: int = 2):
    """The identity, but ``by`` added to one element of one sample."""
    def run(x):
        y = x.copy()
        if np.array_equal(x, SAMPLES[sample]["x"]):
            y[element] += by
        return y
    return run


def _compare(expected, actual, samples=SAMPLES, tolerance=Tolerance()):
    return compare(_run(expected), _run(actual), samples, tolerance, reference="r", runtime="a", inputs="i")


def test_compare_reports_worst_over_samples():
    samples = [{"x": np.full(4, v, np.float32)} for v in (1.0, 2.0, 3.0)]
    ref = _run({"y": lambda x: x * 2})
    off = _run({"y": lambda x: x * 2 + (x == 2) * 0.5})  # only the second sample is off
    report = compare(ref, off, samples, Tolerance(), reference="r", runtime="a", inputs="i")
    assert not report.passed
    assert report.outputs["y"].max_abs_diff == 0.5
    assert report.to_json()["passed"] is False
    same = compare(ref, ref, samples, Tolerance(), reference="r", runtime="a", inputs="i")
    assert same.passed and same.outputs["y"].max_abs_diff == 0.0 and same.outputs["y"].cosine == 1.0


def test_an_error_between_the_tolerance_and_gross_fails():
    """3e-4 on one element of the middle sample: 3x atol, a cosine of ~1. It must fail."""
    report = _compare({"y": lambda x: x}, {"y": _nudged(3e-4)})
    out = report.outputs["y"]
    assert out.max_abs_diff == pytest.approx(3e-4, rel=1e-9)
    assert out.cosine > 0.9999  # the cosine alone would pass it: only atol catches this error
    assert not out.within_tolerance and not report.passed


def test_an_error_within_the_tolerance_passes():
    report = _compare({"y": lambda x: x}, {"y": _nudged(5e-5, sample=2, element=0)})
    out = report.outputs["y"]
    assert out.max_abs_diff == pytest.approx(5e-5, rel=1e-9) and out.within_tolerance and report.passed


def test_rtol_scales_with_the_reference():
    """allclose allows atol + rtol * |ref|: 1e-3 on a value of 10 is within rtol 1e-3 (1e-2 + 1e-4)."""
    samples = [{"x": np.array([10.0, 0.05, 0.02])}]
    big = _compare({"y": lambda x: x}, {"y": lambda x: x + np.array([1e-3, 0, 0])}, samples)
    assert big.passed
    small = _compare({"y": lambda x: x}, {"y": lambda x: x + np.array([0, 1e-3, 0])}, samples)
    assert not small.passed


def test_worst_diff_and_worst_cosine_come_from_different_samples():
    """The report keeps the largest diff and the lowest cosine, wherever each was found, and a fail stays a fail."""
    samples = [{"x": np.array([100.0, 200.0, 300.0])}, {"x": np.array([1e-3, -2e-3, 1e-3])}, {"x": np.ones(3)}]

    def actual(x):
        if x[0] == 100.0:
            return x + np.array([0.0, 0.0, 0.5])  # large diff, cosine ~1
        if x[0] == 1e-3:
            return -x  # tiny diff, cosine -1
        return x

    report = _compare({"y": lambda x: x}, {"y": actual}, samples, Tolerance(atol=1e-2, rtol=0.0))
    out = report.outputs["y"]
    assert out.max_abs_diff == 0.5
    assert out.cosine == pytest.approx(-1.0, abs=1e-12)
    assert not out.within_tolerance  # failed on the first sample, even though the last one is exact


def test_cosine_is_waived_only_within_atol():
    """An output of ~zeros whose sign flipped is within atol: the cosine (-1) is noise there. Beyond atol it counts."""
    samples = [{"x": np.array([2e-6, -1e-6, 3e-6])}]
    flipped = _compare({"y": lambda x: x}, {"y": lambda x: -x}, samples, Tolerance(atol=1e-5, rtol=0.0))
    assert flipped.passed and flipped.outputs["y"].cosine == pytest.approx(-1.0)
    # allclose passes by rtol (values near 1e-2, 40 % off, rtol 0.5) but the cosine misses and the diff
    # (4e-3) is beyond atol: no waiver. A 1000x looser atol in the waiver would let it through.
    samples = [{"x": np.array([1e-2, 1e-2, 1e-2, 1e-2])}]
    skewed = _compare({"y": lambda x: x}, {"y": lambda x: x * np.array([1.4, 0.6, 1.4, 0.6])}, samples,
                      Tolerance(atol=1e-4, rtol=0.5, min_cosine=0.9999))
    out = skewed.outputs["y"]
    assert out.max_abs_diff == pytest.approx(4e-3) and out.cosine < 0.96 and not skewed.passed
    # On the boundaries: a diff exactly at atol is waived, a cosine exactly at min_cosine passes.
    exact = [{"x": np.array([0.0, 0.5])}]
    assert _compare({"y": lambda x: x}, {"y": lambda x: x * 0}, exact, Tolerance(atol=0.5, rtol=0.0)).passed
    scaled = [{"x": np.array([1.0, 0.0])}]
    assert _compare({"y": lambda x: x}, {"y": lambda x: x * 1.5}, scaled,
                    Tolerance(atol=1e-6, rtol=0.5, min_cosine=1.0)).passed


def test_shape_mismatch_fails_without_inventing_numbers():
    samples = [{"x": np.ones(4, np.float32)}]
    report = compare(_run({"y": lambda x: x}), _run({"y": lambda x: x[:2]}), samples, Tolerance(),
                     reference="r", runtime="a", inputs="i")
    out = report.outputs["y"]
    assert not report.passed and out.max_abs_diff is None and "shape [2]" in out.note
    assert describe(out) == "shape [2] where the reference has [4]"


def test_a_shape_mismatch_in_any_sample_sticks():
    """Wrong on the first sample only, or on the last only: either way no numbers, and a failure."""
    first = _compare({"y": lambda x: x}, {"y": lambda x: x[:2] if x[0] == 0.01 else x})
    last = _compare({"y": lambda x: x}, {"y": lambda x: x[:2] if x[0] == -0.05 else x})
    for report in (first, last):
        out = report.outputs["y"]
        assert (out.max_abs_diff, out.cosine, out.within_tolerance) == (None, None, False)


def test_each_output_on_its_own_and_the_worst_of_them():
    report = _compare({"good": lambda x: x, "off": lambda x: x, "near": lambda x: x},
                      {"good": lambda x: x, "off": _nudged(3e-4), "near": _nudged(5e-5)})
    assert not report.passed  # one output out of three fails: the artifact fails
    assert report.outputs["good"].within_tolerance and report.outputs["near"].within_tolerance
    assert report.worst()[0] == "off"  # failing beats a larger diff that passes
    assert report.to_json()["outputs"]["off"]["within_tolerance"] is False
    assert describe(report.outputs["off"]) == f"max abs diff 0.0003, cosine {report.outputs['off'].cosine:.6f}"


def test_worst_prefers_failures_then_missing_numbers_then_the_largest_diff():
    def rep(**outputs):
        return ValidationReport("r", "a", "i", 1, {}, outputs)

    passing_big, passing_small = OutputReport(0.4, 1.0, True), OutputReport(0.0, 1.0, True)
    failing_small, failing_big = OutputReport(0.2, 0.5, False), OutputReport(0.7, 0.1, False)
    mismatch = OutputReport(None, None, False, "shape [2] where the reference has [4]")
    assert rep(a=passing_big, b=failing_small).worst()[0] == "b"
    assert rep(a=failing_small, b=mismatch, c=failing_big).worst()[0] == "b"
    assert rep(a=failing_big, b=failing_small).worst()[0] == "a"
    assert rep(a=failing_small, b=failing_big).worst()[0] == "b"
    assert rep(a=passing_big, b=passing_small).worst()[0] == "a"
    assert rep(a=passing_small, b=passing_big).worst()[0] == "b"


def test_empty_outputs_compare_equal():
    samples = [{"x": np.zeros(0)}]
    report = _compare({"y": lambda x: x}, {"y": lambda x: x}, samples)
    assert report.passed and report.outputs["y"].max_abs_diff == 0.0


def test_cosine_edge_cases():
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.zeros(3), np.ones(3)) == 0.0
    assert cosine(np.ones(3), np.zeros(3)) == 0.0
    assert abs(cosine(np.array([1.0, 0]), np.array([0, 1.0]))) < 1e-12
    assert cosine(np.array([3.0, 4.0]), np.array([4.0, 3.0])) == pytest.approx(24 / 25, abs=1e-15)
    assert cosine(np.array([[1.0, 2.0]], np.float32), np.array([2.0, 4.0])) == pytest.approx(1.0, abs=1e-15)
