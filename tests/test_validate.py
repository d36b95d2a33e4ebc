from __future__ import annotations

import numpy as np

from edge.core.catalog import Tolerance
from edge.build.validate import compare, cosine


def _run(outputs):
    return lambda feeds: {name: fn(feeds["x"]) for name, fn in outputs.items()}


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


def test_shape_mismatch_fails_without_inventing_numbers():
    samples = [{"x": np.ones(4, np.float32)}]
    report = compare(_run({"y": lambda x: x}), _run({"y": lambda x: x[:2]}), samples, Tolerance(),
                     reference="r", runtime="a", inputs="i")
    out = report.outputs["y"]
    assert not report.passed and out.max_abs_diff is None and "shape [2]" in out.note


def test_cosine_edge_cases():
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.zeros(3), np.ones(3)) == 0.0
    assert abs(cosine(np.array([1.0, 0]), np.array([0, 1.0]))) < 1e-12
