"""Repair: keep the layers that break a quantized model in float, one step at a time.

``repair`` is the loop, shared by every format. The ranking is measured once, on the
evaluation samples that miss the budget most: each candidate layer's contribution is how
much the gate's error on those samples shrinks when that one layer alone is kept in float
(leave-one-out, a real rebuild per layer). For graphs with many quantized layers, a cheap
per-layer comparison against the float graph (``onnx_layer_errors``: the error a layer's
output adds over its inputs') first picks the ``shortlist`` most suspect layers. Then the
loop keeps layers in float in ranked order, rebuilding and re-checking the gate each step,
until the budget is met or ``max_steps`` is reached. Gains do not add up, so once the budget
is met the costliest kept layers (by ``cost``, their weight count) are tried back in int8 one
by one, and stay int8 where the gate still passes. Every step is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.build.gate import GateReport
from edge.build.validate import cosine

SHORTLIST = 48


@dataclass
class RepairResult:
    path: Path
    report: GateReport
    kept_in_float: list[str]
    steps: list[dict[str, Any]] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)


def leave_one_out(candidates: list[str], build: Callable[[list[str]], Path], badness: Callable[[Path], float],
                  baseline: float, discard: Callable[[Path], None] = lambda p: None) -> list[tuple[str, float]]:
    """(layer, how much keeping it alone in float lowers the error), best first."""
    gains = []
    for name in candidates:
        trial = build([name])
        gains.append((name, baseline - badness(trial)))
        discard(trial)  # one model per candidate: a large graph would fill the disk
    return sorted(gains, key=lambda kv: -kv[1])


def repair(path: Path, report: GateReport, *, build: Callable[[list[str]], Path], check: Callable[[Path], GateReport],
           rank: Callable[[Path, GateReport], list[tuple[str, float]]], max_steps: int,
           cost: Callable[[str], int] = lambda name: 0, on_step: Callable[[str], None] = lambda s: None,
           discard: Callable[[Path], None] = lambda p: None) -> RepairResult:
    """Keep ranked layers in float until ``check`` passes; ``discard`` gets every model left behind."""
    result = RepairResult(path, report, [], [{"kept_in_float": [], "gate": report.to_json()}])
    if report.passed or max_steps <= 0:
        return result
    on_step("ranking the quantized layers by the error each one adds")
    ranking = rank(path, report)
    result.ranking = [{"layer": n, "gain": g} for n, g in ranking]
    for name, gain in ranking[:max_steps]:
        kept = result.kept_in_float + [name]
        on_step(f"repair step {len(kept)}: keeping '{name}' in float")
        discard(result.path)
        result.path = build(kept)
        result.report = check(result.path)
        result.kept_in_float = kept
        result.steps.append({"kept_in_float": kept, "gain_when_alone": gain, "gate": result.report.to_json()})
        if result.report.passed:
            break
    if result.report.passed and len(result.kept_in_float) > 1:
        _give_back(result, build, check, cost, on_step, discard)
    return result


def _give_back(result: RepairResult, build, check, cost, on_step, discard) -> None:
    """Return kept layers to int8, costliest first, wherever the gate still passes without them."""
    for name in sorted(result.kept_in_float, key=lambda n: -cost(n)):
        kept = [n for n in result.kept_in_float if n != name]
        path = build(kept)
        report = check(path)
        on_step(f"repair: '{name}' back to int8 -> {'still passes' if report.passed else 'misses, stays float'}")
        if report.passed:
            discard(result.path)
            result.path, result.report, result.kept_in_float = path, report, kept
            result.steps.append({"kept_in_float": kept, "returned_to_int8": name, "gate": report.to_json()})
        else:
            discard(path)


def onnx_layer_errors(fp32: Path, quantized: Path, candidates: list[str], samples: list[dict[str, np.ndarray]],
                      open_session: Callable[[Path], Any]) -> list[tuple[str, float]]:
    """(node, error it adds), worst first, for candidate nodes of the fp32 graph."""
    import onnx

    float_model = onnx.load(str(fp32))
    quant_model = onnx.load(str(quantized))
    quant_tensors = {o for n in quant_model.graph.node for o in n.output} & _float_tensors(float_model)
    weights = {t.name for t in float_model.graph.initializer} | {
        n.output[0] for n in float_model.graph.node if n.op_type == "Constant"}
    nodes = {n.name: n for n in float_model.graph.node}
    watch: dict[str, tuple[str, list[str]]] = {}
    for name in candidates:
        node = nodes.get(name)
        if node is None or not node.output or node.output[0] not in quant_tensors:
            continue
        inputs = [i for i in node.input if i and i not in weights and i in quant_tensors]
        watch[name] = (node.output[0], inputs)
    tensors = sorted({t for out, ins in watch.values() for t in [out, *ins]})
    graph_inputs = {i.name for i in float_model.graph.input}
    ref = _run_exposed(float_model, tensors, samples, open_session, fp32.parent)
    got = _run_exposed(quant_model, tensors, samples, open_session, quantized.parent)

    def error(t: str) -> float:
        if t in graph_inputs:
            return 0.0
        return 1.0 - cosine(np.concatenate([r[t].ravel() for r in ref]), np.concatenate([g[t].ravel() for g in got]))

    errors = {t: error(t) for t in tensors}
    added = [(name, errors[out] - max((errors[i] for i in ins), default=0.0)) for name, (out, ins) in watch.items()]
    return sorted(added, key=lambda kv: -kv[1])


def _float_tensors(model) -> set[str]:
    """Names of the float32 tensors of a graph (by ONNX shape inference), the ones we can compare."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def _run_exposed(model, tensors: list[str], samples, open_session, folder: Path) -> list[dict[str, np.ndarray]]:
    """Run ``model`` with ``tensors`` added as outputs (all float by construction)."""
    import tempfile

    import onnx

    existing = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory(prefix="edge-repair-", dir=folder) as tmp:
        path = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(path))
        session = open_session(path)
        return [session.run(feeds) for feeds in samples]
