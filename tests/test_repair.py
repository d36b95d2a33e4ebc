"""Repair's loop on hand-made build/check/rank callables (no quantizer), and the per-layer error on a tiny graph.

The budget is met only after two layers are kept in float, and the gains do not add up (once the
second is kept, the first is no longer needed), so a loop that stops after one step, a give-back
that goes in the wrong order or gives back a layer that is needed all change the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.build import repair
from edge.build.gate import GateReport
from edge.build.validate import cosine

BUDGET = 0.99


class FakeQuantizer:
    """Stands in for the quantizer and the gate: ``score(kept)`` is the gate's cosine with those layers in float."""

    def __init__(self, score, ranking):
        self.score, self.ranking = score, ranking
        self.built: list[list[str]] = []
        self.kept: dict[Path, list[str]] = {Path("model.0.onnx"): []}
        self.discarded: list[Path] = []
        self.steps: list[str] = []
        self.ranked: list[tuple[Path, GateReport]] = []

    def build(self, kept: list[str]) -> Path:
        self.built.append(list(kept))
        path = Path(f"model.{len(self.built)}.onnx")
        self.kept[path] = list(kept)
        return path

    def check(self, path: Path) -> GateReport:
        value = self.score(set(self.kept[path]))
        failures = [] if value >= BUDGET else [f"min cosine {value:.4f} < {BUDGET:g}"]
        return GateReport("embedding", not failures, {"min_cosine": value, "mean_cosine": value, "samples": 1},
                          {"min_cosine": BUDGET}, failures, [1 - value])

    def rank(self, path: Path, report: GateReport) -> list[tuple[str, float]]:
        self.ranked.append((path, report))
        return self.ranking

    def repair(self, max_steps: int = 16, cost=lambda name: 0):
        first = Path("model.0.onnx")
        return repair.repair(first, self.check(first), build=self.build, check=self.check, rank=self.rank,
                             max_steps=max_steps, cost=cost, on_step=self.steps.append, discard=self.discarded.append)


def _needs_b(kept: set[str]) -> float:
    """Passes once 'b' is in float; 'a' helps alone but is not needed beside 'b'."""
    if "b" in kept:
        return 0.995
    return 0.95 if "a" in kept else 0.9


RANKING = [("a", 0.05), ("b", 0.04), ("c", 0.01)]  # 'a' ranks first: its gain alone is the larger
COSTS = {"a": 100, "b": 1, "c": 50}


def test_budget_met_on_the_second_step_then_the_unneeded_layer_goes_back():
    m = FakeQuantizer(_needs_b, RANKING)
    result = m.repair(cost=COSTS.get)
    assert [s["kept_in_float"] for s in result.steps] == [[], ["a"], ["a", "b"], ["b"]]
    assert [s.get("gain_when_alone") for s in result.steps[1:3]] == [0.05, 0.04]
    assert [s["gate"]["passed"] for s in result.steps] == [False, False, True, True]
    assert result.steps[3]["returned_to_int8"] == "a"
    assert result.kept_in_float == ["b"] and result.report.passed
    assert result.path == Path("model.3.onnx") and m.kept[result.path] == ["b"]
    # Give-back tries the costliest first ('a', 100 weights): it goes back. 'b' cannot: the gate misses.
    assert m.built == [["a"], ["a", "b"], ["b"], []]
    assert m.discarded == [Path("model.0.onnx"), Path("model.1.onnx"), Path("model.2.onnx"), Path("model.4.onnx")]
    assert result.ranking == [{"layer": "a", "gain": 0.05}, {"layer": "b", "gain": 0.04}, {"layer": "c", "gain": 0.01}]
    # Ranked once, on the first model and the report that missed.
    assert [(p, r.metrics["min_cosine"]) for p, r in m.ranked] == [(Path("model.0.onnx"), 0.9)]
    assert m.steps == ["ranking the quantized layers by the error each one adds",
                       "repair step 1: keeping 'a' in float", "repair step 2: keeping 'b' in float",
                       "repair: 'a' back to int8 -> still passes", "repair: 'b' back to int8 -> misses, stays float"]


def test_give_back_goes_costliest_first():
    m = FakeQuantizer(_needs_b, RANKING)
    result = m.repair(cost={"a": 1, "b": 100}.get)  # now 'b' is tried first, and stays
    assert m.built == [["a"], ["a", "b"], ["a"], ["b"]]
    assert result.kept_in_float == ["b"]
    assert [s["kept_in_float"] for s in result.steps] == [[], ["a"], ["a", "b"], ["b"]]
    assert m.discarded == [Path("model.0.onnx"), Path("model.1.onnx"), Path("model.3.onnx"), Path("model.2.onnx")]


def test_give_back_keeps_every_layer_that_is_needed():
    m = FakeQuantizer(lambda kept: 0.995 if {"a", "b"} <= kept else 0.9, RANKING)
    result = m.repair(cost=COSTS.get)
    assert result.kept_in_float == ["a", "b"] and result.report.passed and result.path == Path("model.2.onnx")
    assert m.built == [["a"], ["a", "b"], ["b"], ["a"]]
    assert len(result.steps) == 3 and "returned_to_int8" not in result.steps[-1]


def test_max_steps_stops_the_loop():
    m = FakeQuantizer(lambda kept: 0.995 if {"a", "b", "c"} <= kept else 0.9, RANKING)
    result = m.repair(max_steps=2)
    assert not result.report.passed
    assert result.kept_in_float == ["a", "b"] and m.built == [["a"], ["a", "b"]]
    assert [s["kept_in_float"] for s in result.steps] == [[], ["a"], ["a", "b"]]
    assert result.path == Path("model.2.onnx") and m.discarded == [Path("model.0.onnx"), Path("model.1.onnx")]


def test_ranking_shorter_than_max_steps():
    m = FakeQuantizer(lambda kept: 0.9, [("a", 0.01)])
    result = m.repair(max_steps=5)
    assert m.built == [["a"]] and result.kept_in_float == ["a"] and not result.report.passed


def test_one_layer_that_fixes_it_is_not_tried_back():
    m = FakeQuantizer(lambda kept: 0.995 if "a" in kept else 0.9, RANKING)
    result = m.repair(cost=COSTS.get)
    assert m.built == [["a"]] and result.kept_in_float == ["a"] and result.report.passed
    assert m.discarded == [Path("model.0.onnx")] and len(result.steps) == 2


def test_nothing_to_do():
    passing = FakeQuantizer(lambda kept: 0.995, RANKING)
    result = passing.repair()
    assert result.kept_in_float == [] and result.report.passed and result.path == Path("model.0.onnx")
    assert passing.built == [] and passing.ranked == [] and passing.steps == [] and len(result.steps) == 1
    failing = FakeQuantizer(_needs_b, RANKING)
    result = failing.repair(max_steps=0)
    assert not result.report.passed and failing.built == [] and failing.ranked == [] and result.ranking == []
    assert failing.repair(max_steps=1).kept_in_float == ["a"]


def test_leave_one_out_ranks_by_gain_and_discards_each_trial():
    alone = {"w": 1.2, "x": 0.5, "y": 0.2, "z": 0.9}  # the error with that layer alone in float
    built, discarded = [], []

    def build(kept):
        built.append(kept)
        return Path(f"{kept[0]}.onnx")

    gains = repair.leave_one_out(["w", "x", "y", "z"], build, lambda p: alone[p.stem], 1.0, discard=discarded.append)
    assert [name for name, _ in gains] == ["y", "x", "z", "w"]
    assert [g for _, g in gains] == pytest.approx([0.8, 0.5, 0.1, -0.2], abs=1e-12)
    assert built == [["w"], ["x"], ["y"], ["z"]]
    assert discarded == [Path("w.onnx"), Path("x.onnx"), Path("y.onnx"), Path("z.onnx")]


# -- the per-layer error on a real (tiny, hand-built) ONNX graph ------------------------------------------------


def _graph(path: Path, w1, w2, b, relu_out: str) -> None:
    """x -> mm1 (MatMul w1) -> h -> relu -> relu_out -> mm2 (MatMul w2) -> z; add: s = z + h; bias: y = s + b."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Constant", [], ["b"], name="const_b", value=numpy_helper.from_array(b, "b")),
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], [relu_out], name="relu"),
        helper.make_node("MatMul", [relu_out, "w2"], ["z"], name="mm2"),
        helper.make_node("Add", ["z", "h"], ["s"], name="add"),
        helper.make_node("Add", ["s", "b"], ["y"], name="bias"),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_onnx_layer_errors_is_the_error_each_node_adds(tmp_path):
    pytest.importorskip("onnx")
    from edge.device.runtime import backend

    w1 = np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.4], [-0.6, 0.2, 0.9]], np.float32)
    w2 = np.array([[0.7, 0.1, -0.3], [-0.2, 0.4, 0.6], [0.5, -0.5, 0.2]], np.float32)
    b = np.array([0.1, -0.2, 0.3], np.float32)
    # The "quantized" graph: w1 a little off, w2 more, the constant bias off too, and the Relu's output
    # renamed (as a quantizer's Q/DQ pair would), so that tensor cannot be compared.
    q1, q2, qb = w1 + np.float32(0.02), w2 * np.float32(1.3), b + np.float32(0.5)
    _graph(tmp_path / "fp32.onnx", w1, w2, b, "r")
    _graph(tmp_path / "int8.onnx", q1, q2, qb, "r_q")
    samples = [{"x": np.array([[1.0, -2.0, 0.5]], np.float32)}, {"x": np.array([[0.3, 0.4, -1.5], [2.0, 1.0, 1.0]],
                                                                               np.float32)}]
    ort = backend("onnxruntime")
    found = repair.onnx_layer_errors(tmp_path / "fp32.onnx", tmp_path / "int8.onnx",
                                     ["mm1", "relu", "mm2", "add", "bias", "ghost"], samples,
                                     lambda p: ort.open(p, optimization="disable"))

    def forward(w1, w2, b):
        x = np.concatenate([s["x"] for s in samples]).astype(np.float64)
        h = x @ w1
        z = np.maximum(h, 0) @ w2
        return {"h": h, "z": z, "s": z + h, "y": z + h + b}

    ref, got = forward(w1, w2, b), forward(q1, q2, qb)
    err = {t: 1 - cosine(ref[t], got[t]) for t in ref}
    expected = {"mm1": err["h"],  # its input is the graph's input: no error comes in
                "mm2": err["z"],  # its input (the Relu's output) has no float twin: counted as error-free
                "add": err["s"] - max(err["z"], err["h"]),  # the worse of its two inputs
                "bias": err["y"] - err["s"]}  # the constant is a weight, not an input
    assert [name for name, _ in found] == sorted(expected, key=lambda n: -expected[n])
    assert dict(found) == pytest.approx(expected, rel=1e-3, abs=1e-6)
    assert err["z"] > err["h"] > 1e-4  # the two inputs of 'add' differ, so max and min would differ
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "int8.onnx"]  # no scratch model left
