"""Building the profile's quantized variants from the fp32 artifact: quantize, gate, repair.

Each variant is quantized as its recipe says, compared with the fp32 artifact on the
evaluation data (``edge.build.gate``), and, when it misses the budget, repaired by keeping the
layers that add the most error in float (``edge.build.repair``).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from edge.core import catalog
from edge.build import quantize, repair, speed
from edge.build import gate as gates
from edge.core.catalog import Gate, Variant
from edge.build.data import Dataset
from edge.core.errors import ExportError, InputsRefusedError, InvalidModelError, UsageError, ValidationError
from edge.device.runtime import backend

log = logging.getLogger(__name__)
RANKING_SAMPLES = 16
SLOWER = 1.10  # flag a variant more than 10 % slower than fp32


@dataclass
class Built:
    variant: Variant
    path: Path
    recipe: dict[str, Any]
    gate: dict[str, Any]  # the final report, with the repair steps
    passed: bool
    latency: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # Artifact fields a format adds (TFLite: ops, specs)
    # How to run it for the export-time latency (default: onnxruntime), and that runtime's name.
    open: Callable[[Path, int], Any] | None = None
    runtime: str | None = None


@dataclass
class Context:
    fp32: Path
    workdir: Path
    gate: Gate
    kind: str
    calibration: Dataset
    evaluation: Dataset
    on_progress: Callable[[str], None] = lambda s: None
    # How a file is run for the gate (default: onnxruntime, every output); a language model's
    # runner reduces 262 k-word logits to what the gate needs as they come.
    runner: Callable[[Path], Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] | None = None
    _reference: list | None = field(default=None, repr=False)

    def open(self, path: Path) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        return self.runner(path) if self.runner else backend("onnxruntime").open(path).run

    def reference(self) -> list:
        """The fp32 artifact's outputs on the evaluation samples, computed once."""
        if self._reference is None:
            run = self.open(self.fp32)
            self._reference = [run(s) for s in self.evaluation.samples]
        return self._reference


class Layers(Protocol):
    """What building one variant needs of its format: the layers it quantizes, how to build
    the variant with some of them kept in float, and how to run a built file."""

    candidates: list[str]
    suffix: str  # the file name's extension
    shortlist: int  # at most this many layers are ranked by a rebuild each (the suspects first)

    def weight(self, layer: str) -> int: ...

    def make(self, out: Path, keep_float: list[str]) -> dict[str, Any]: ...

    def open(self, path: Path) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]: ...

    def suspects(self, path: Path, samples: list[dict[str, np.ndarray]]) -> list[str]: ...

    def finish(self, built: Built) -> None:
        """Add the format's own fields to the chosen build (TFLite: ops, specs, its runtime)."""


class OnnxLayers:
    """ONNX variants: onnxruntime's quantizer, nodes by name."""

    suffix = "onnx"
    shortlist = repair.SHORTLIST

    def __init__(self, ctx: Context, variant: Variant) -> None:
        import onnx

        model = onnx.load(str(ctx.fp32), load_external_data=False)
        self.ctx, self.variant = ctx, variant
        self.candidates = quantize.quantizable_nodes(model, variant)
        self._weights = quantize.weight_counts(model)

    def weight(self, layer: str) -> int:
        return self._weights.get(layer, 0)

    def make(self, out: Path, keep_float: list[str]) -> dict[str, Any]:
        return quantize.quantize(self.ctx.fp32, out, self.variant, self.ctx.calibration, keep_float)

    def open(self, path: Path):
        return backend("onnxruntime").open(path).run

    def suspects(self, path: Path, samples: list[dict[str, np.ndarray]]) -> list[str]:
        ort = backend("onnxruntime")
        errors = repair.onnx_layer_errors(self.ctx.fp32, path, self.candidates, samples,
                                          lambda p: ort.open(p, optimization="disable"))
        return [name for name, _ in errors]

    def finish(self, built: Built) -> None:
        pass  # an ONNX artifact needs nothing beyond what Built holds


def build(variant: Variant, ctx: Context, layers: Layers | None = None) -> Built:
    """Quantize ``variant``, gate it against the fp32 ONNX outputs, repair it if it misses."""
    layers = layers or OnnxLayers(ctx, variant)
    candidates = layers.candidates
    recipes: dict[Path, dict[str, Any]] = {}
    builds = itertools.count()

    def make(keep: list[str]) -> Path:
        out = ctx.workdir / f"{variant.name}.{next(builds)}.{layers.suffix}"
        recipes[out] = layers.make(out, keep)
        return out

    def check(path: Path, indices: list[int] | None = None) -> gates.GateReport:
        chosen = range(len(ctx.evaluation.samples)) if indices is None else indices
        samples = [ctx.evaluation.samples[i] for i in chosen]
        labels = None if ctx.evaluation.labels is None else ctx.evaluation.labels[list(chosen)]
        run = layers.open(path)
        outputs = [run(s) for s in samples]
        references = [ctx.reference()[i] for i in chosen]
        if ctx.kind == "language-model":  # perplexity and next-token agreement, from the reduced outputs
            from edge.build.llm.gate import evaluate

            return evaluate(references, outputs, ctx.gate)
        return gates.evaluate(ctx.kind, references, outputs, samples, ctx.gate, labels)

    def rank(path: Path, report: gates.GateReport) -> list[tuple[str, float]]:
        worst = report.worst_samples(RANKING_SAMPLES)  # where the error hurts

        def badness(p: Path) -> float:
            return float(np.mean(check(p, worst).badness))

        shortlist = candidates
        if len(candidates) > layers.shortlist:
            shortlist = layers.suspects(path, [ctx.evaluation.samples[i] for i in worst])[: layers.shortlist]
        gains = repair.leave_one_out(shortlist, make, badness, badness(path), discard=_discard)
        return [(name, gain) for name, gain in gains if gain > 0]

    ctx.on_progress(f"quantizing variant '{variant.name}' ({variant.precision})")
    first = make([])
    report = check(first)
    ctx.on_progress(f"gate for '{variant.name}': {report.summary()} -> {'passed' if report.passed else 'missed'}")
    result = repair.repair(first, report, build=make, check=check, rank=rank, cost=layers.weight,
                           # Keeping every layer in float would leave nothing quantized: stop one short.
                           max_steps=min(ctx.gate.max_repair_steps, len(candidates) - 1), on_step=ctx.on_progress,
                           discard=_discard)
    if result.kept_in_float:
        verdict = "passed" if result.report.passed else "still missed"
        ctx.on_progress(f"gate for '{variant.name}' after keeping {len(result.kept_in_float)} layer(s) in float: "
                        f"{result.report.summary()} -> {verdict}")
    gate_json = {**result.report.to_json(), "kept_in_float": result.kept_in_float, "steps": result.steps,
                 "quantized_layers": len(candidates) - len(result.kept_in_float), "ranking": result.ranking[:20]}
    built = Built(variant, result.path, recipes[result.path], gate_json, result.report.passed)
    layers.finish(built)
    return built


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass
class Outcome:
    """What building the variants gave: artifacts, variants left out and why, and notes."""

    built: list[Built] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None
    fp32_latency: dict[str, Any] | None = None
    data: list[Dataset] = field(default_factory=list)  # the calibration and evaluation data the variants used


def reference_variant(profile: catalog.Profile) -> Variant:
    """The fp32 ONNX variant: always built, it is what every other variant is checked against."""
    found = [v for v in profile.variants if v.format == "onnx" and v.precision == "fp32"]
    return found[0] if found else Variant(name="fp32")


def wanted(profile: catalog.Profile, names: tuple[str, ...], formats: tuple[str, ...] = ()) -> list[Variant]:
    known = {v.name: v for v in profile.variants}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"profile '{profile.name}' has no variant {', '.join(unknown)}", hint=f"its variants: {', '.join(known)}")
    bad = [f for f in formats if f not in ("onnx", "tflite")]
    if bad:
        raise UsageError(f"unknown format {', '.join(bad)}", hint="formats: onnx, tflite (e.g. --format onnx,tflite)")
    have = {v.format for v in profile.variants}
    missing = [f for f in formats if f not in have]
    if missing:
        raise UsageError(f"profile '{profile.name}' builds no {', '.join(missing)} artifacts",
                         hint="choose a target whose profile has them (e.g. --target rpi5), or --profile")
    reference = reference_variant(profile)
    return [v for v in profile.variants
            if (not names or v.name in names) and (not formats or v.format in formats or v == reference)]


def skip(variant: Variant, reason: str, gate: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"variant": variant.name, "format": variant.format, "precision": variant.precision, "reason": reason}
    if gate is not None:
        out["gate"] = gate
    return out


def build_all(todo: list[Variant], ctx: Context, strict: bool, outcome: Outcome,
              layers_for: Callable[[Variant], Layers] | None = None) -> None:
    """Build each variant through the gate; ``layers_for`` gives a format's layers (default ONNX)."""
    if outcome.evaluation is None:
        outcome.evaluation = {"kind": ctx.kind, "data": ctx.evaluation.to_json(), "calibration": ctx.calibration.to_json()}
        weight_only = ctx.kind == "language-model"  # weight-only variants need no calibration data
        if ctx.evaluation is ctx.calibration and not ctx.calibration.synthetic and not weight_only:
            outcome.evaluation["data"]["note"] = "no --eval-data: evaluated on the calibration data"
        if ctx.evaluation.synthetic:
            outcome.notes.append(f"accuracy gate: {ctx.evaluation.to_json()['warning']}")
    import onnx

    model = onnx.load(str(ctx.fp32), load_external_data=False)
    for variant in todo:
        reason = quantize.not_applicable(model, variant, language_model=ctx.kind == "language-model")
        if reason:
            outcome.skipped.append(skip(variant, f"not applicable: {reason}"))
            continue
        try:
            layers = layers_for(variant) if layers_for else None
            if layers is not None and not layers.candidates:
                outcome.skipped.append(skip(variant, f"not applicable: nothing to quantize (no weighted {layers.suffix} layer)"))
                continue
            result = build(variant, ctx, layers)
        except (ExportError, InvalidModelError, InputsRefusedError) as exc:
            # A quantizer or runtime defect (e.g. ai-edge-quantizer writing scales LiteRT refuses, or
            # a full-int8 DIV whose divisor rounds to zero: LiteRT then refuses to run the inputs the
            # float model took) is not the user's doing: the variant is left out, loudly, and the rest goes on.
            outcome.skipped.append(skip(variant, f"could not be built: {exc.message}"))
            outcome.notes.append(f"variant '{variant.name}' could not be built: {exc.message}")
            continue
        if result.passed:
            outcome.built.append(result)
            continue
        missed = _missed(result)
        # On synthetic data the gate is only a numerical comparison: a miss drops the variant
        # instead of failing the export; on real data it is a failure unless --no-strict.
        if strict and not ctx.evaluation.synthetic:
            raise ValidationError(
                f"variant '{variant.name}' {missed}",
                hint=("loosen the budget (--max-perplexity-increase, --min-next-token-agreement), or pass "
                      "--no-strict to keep the variants that passed" if ctx.kind == "language-model" else
                      "give real --calib-data/--eval-data, loosen the budget (--max-top1-drop, --min-cosine, "
                      "--min-snr), or pass --no-strict to keep only the float artifact"),
            )
        if ctx.evaluation.synthetic:
            missed += (" on the model's own text (give --eval-data to judge it on real text)" if ctx.kind == "language-model"
                       else " on synthetic data (give --calib-data and --eval-data to judge it on real data)")
        outcome.skipped.append(skip(variant, missed, result.gate))
        outcome.notes.append(f"variant '{variant.name}' was left out: {missed}")


def _missed(result: Built) -> str:
    kept = len(result.gate["kept_in_float"])
    return f"missed its accuracy budget ({'; '.join(result.gate['failures'])}) even with {kept} layer(s) kept in float"


def measure(target: catalog.Target, profile: catalog.Profile, fp32: Path, held_out: Dataset, outcome: Outcome, step) -> None:
    """Latency of each variant, recorded only when this machine is of the target's class."""
    from edge.device.detect import detect

    here = detect("/").target
    if here != target.name:
        outcome.notes.append(f"latency not recorded: this machine is a {here}, not a {target.name} "
                             f"(run 'edge profile' on the device)")
        return
    step(f"measuring the latency of each variant (this machine is a {here})")
    ort = backend("onnxruntime")
    threads = profile.runtime.threads
    feeds = held_out.samples[0]
    outcome.fp32_latency = speed.latency(ort.open(fp32, threads=threads), feeds, threads, f"onnxruntime {ort.version()}")
    for b in outcome.built:
        opener = b.open or (lambda path, n: ort.open(path, threads=n))
        b.latency = speed.latency(opener(b.path, threads), feeds, threads, b.runtime or f"onnxruntime {ort.version()}")
        ratio = b.latency["median_ms"] / outcome.fp32_latency["median_ms"]
        if ratio > SLOWER:  # below that, an export-time median is within its own noise
            outcome.notes.append(f"variant '{b.variant.name}' is SLOWER than fp32 here: "
                                 f"{b.latency['median_ms']:.3f} ms vs {outcome.fp32_latency['median_ms']:.3f} ms "
                                 f"(+{(ratio - 1) * 100:.0f} %)")


def preference(artifacts: list, runtimes: list[str] | None = None) -> list[str]:
    """Artifact names, fastest measured first; unmeasured ones after them, those of the format
    the profile's first runtime runs first (LiteRT on ARM), else in the profile's order."""
    from edge.device.runtime import for_format

    order = list(runtimes or [])

    def rank(a) -> int:
        found = [order.index(r) for r in for_format(a.format) if r in order]
        return min(found) if found else len(order)

    timed = sorted((a for a in artifacts if a.latency), key=lambda a: a.latency["median_ms"])
    return [a.name for a in timed] + [a.name for a in sorted((a for a in artifacts if not a.latency), key=rank)]
