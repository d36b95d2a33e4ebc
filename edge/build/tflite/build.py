"""The TFLite variants of an export: convert once to float32, validate that file in the LiteRT
interpreter against the source model, then quantize it as each variant says through the same
gate and repair as the ONNX variants (``edge.build.variants``).

A PyTorch or transformers source converts from its torch module; an ONNX file goes through
onnx2torch first (``edge.build.tflite.onnx_torch``). When conversion fails the export fails, naming the op;
with ``--no-strict`` the bundle keeps its ONNX artifacts and records why TFLite is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.build.tflite import convert as tflite
from edge.build import repair, variants
from edge.core.catalog import Profile, Variant
from edge.build.data import Dataset, with_seen
from edge.core.errors import EdgeError, UsageError, ValidationError
from edge.exporters.base import Exported
from edge.device.model import Choice, Model, pinned
from edge.device.runtime import backend
from edge.device.runtime.tflite_ops import read_ops
from edge.core.specs import DimSizes, TensorSpec
from edge.build.validate import ValidationReport, compare, describe


@dataclass
class Converted:
    """The float32 .tflite every TFLite variant starts from, with its signature."""

    path: Path
    own_inputs: list[TensorSpec]  # as the file stores them: fixed shape, NHWC, int32 ids
    own_outputs: list[TensorSpec]
    inputs: list[TensorSpec]  # the manifest's, with the file's fixed sizes
    outputs: list[TensorSpec]
    how: str  # "litert-torch" or "onnx2torch + litert-torch"

    def runner(self, path: Path, threads: int = 0):
        """Run a .tflite of this signature the way the device will: through ``edge.Model``."""
        litert = backend("litert")
        session = litert.open(path, threads=threads or os.cpu_count() or 1)
        choice = Choice(path.name, "litert", litert.version(), threads, None, "export-time check")
        layouts = {s.name: s.layout for s in self.own_inputs if s.layout == "NHWC"}
        return Model(session, self.inputs, self.outputs, choice, layouts)

    def timed(self, path: Path, threads: int) -> _Prepared:
        """For the export-time latency: the bare session, fed inputs prepared once, as the
        ONNX variants are timed (edge.Model's checks are not part of the runtime's speed)."""
        return _Prepared(self.runner(path, threads))

    def fields(self, path: Path) -> dict[str, Any]:
        """The Artifact fields a TFLite file adds: its ops (for interpreter checks) and its
        signature as stored (fixed shapes, NHWC, int32 ids, int8 with scale and zero point)."""
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner()
        stored = {**runner.get_input_details(), **runner.get_output_details()}

        def spec(s: TensorSpec) -> dict[str, Any]:
            detail = stored[s.name]
            out = {**s.to_json(), "dtype": np.dtype(detail["dtype"]).name}
            scale, zero = detail["quantization"]
            if scale:
                out["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
            return out

        layouts = {s.name: s.layout for s in self.own_inputs if s.layout}
        return {"format": "tflite", "ops": read_ops(path), "layouts": layouts,
                "inputs": [spec(s) for s in self.own_inputs], "outputs": [spec(s) for s in self.own_outputs]}


class _Prepared:
    def __init__(self, model: Model) -> None:
        self._model, self._given, self._feeds = model, None, None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if feeds is not self._given:
            self._given, self._feeds = feeds, self._model.prepare(feeds)
        return self._model.session.run(self._feeds)


class TfliteLayers:
    """The ``variants.Layers`` of a TFLite variant: ai-edge-quantizer on the float file."""

    suffix = "tflite"
    shortlist = repair.SHORTLIST

    def __init__(self, converted: Converted, variant: Variant, calibration: Dataset) -> None:
        self.converted, self.variant = converted, variant
        found = tflite.layers(converted.path)
        self.candidates = [name for name, _, _ in found]
        self._weights = {name: w for name, _, w in found}
        self._calibration = [tflite.stored_feeds(s, converted.own_inputs) for s in calibration.samples]

    def weight(self, layer: str) -> int:
        return self._weights.get(layer, 0)

    def make(self, out: Path, keep_float: list[str]) -> dict[str, Any]:
        return tflite.quantize(self.converted.path, out, self.variant, self._calibration, keep_float)

    def open(self, path: Path):
        return self.converted.runner(path).run

    def suspects(self, path: Path, samples: list[dict[str, np.ndarray]]) -> list[str]:
        # No per-layer float comparison for TFLite yet: the largest layers first.
        return sorted(self.candidates, key=lambda name: -self._weights[name])

    def finish(self, built: variants.Built) -> None:
        built.extra = self.converted.fields(built.path)
        built.gate["kept_in_float"] = [tflite.short(n) for n in built.gate["kept_in_float"]]
        built.open = self.converted.timed
        built.runtime = f"litert {backend('litert').version()}"


def build(todo: list[Variant], ctx: variants.Context, exported: Exported, profile: Profile,
          specs: tuple[list[TensorSpec], list[TensorSpec]], dims: DimSizes, strict: bool, outcome: variants.Outcome,
          seen: list[Dataset | None] = (), explicit: bool = True) -> None:
    """Add the TFLite variants in ``todo`` to ``outcome`` (or their reasons to its skipped list);
    ``specs`` are the manifest's inputs and outputs, ``seen`` the user's validation data.
    ``explicit``: the user asked for TFLite (--format); else a model with open axes and no
    --dim only gets a note, since its ONNX artifacts keep those axes open."""
    if not explicit:
        try:
            tflite.fixed_specs(specs[0], with_seen(dims, specs[0], [ctx.calibration, ctx.evaluation, *seen]))
        except UsageError as exc:  # the profile asked for TFLite, the user did not: say why it is missing
            outcome.skipped += [variants.skip(v, f"no fixed shape: {exc.message}") for v in todo]
            outcome.notes.append(f"no TFLite artifacts: {exc.message} ({exc.hint})")
            return
    try:
        converted = convert(exported, ctx, *specs, dims, seen)
        report = validate(converted, exported, profile)
        ctx = _at_fixed_shape(ctx, converted)
    except EdgeError as exc:
        if strict:
            raise
        outcome.skipped += [variants.skip(v, f"TFLite conversion failed: {exc.message}") for v in todo]
        outcome.notes.append(f"no TFLite artifacts: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
        return
    if not report.passed:
        name, worst = report.worst()
        message = (f"the float32 TFLite file's output '{name}' differs from {exported.reference_name}: {describe(worst)}")
        if strict:
            raise ValidationError(message, hint="pass --no-strict to keep the ONNX artifacts only, or --format onnx")
        outcome.skipped += [variants.skip(v, message) for v in todo]
        outcome.notes.append(f"no TFLite artifacts: {message}")
        return
    for variant in [v for v in todo if v.precision == "fp32"]:
        built = variants.Built(variant, converted.path, {"converter": converted.how}, {}, True)
        built.extra = {**converted.fields(converted.path), "validation": report.to_json()}
        built.open = converted.timed
        built.runtime = f"litert {backend('litert').version()}"
        outcome.built.append(built)
    quantized = [v for v in todo if v.precision != "fp32"]
    variants.build_all(quantized, ctx, strict, outcome, layers_for=lambda v: TfliteLayers(converted, v, ctx.calibration))
    for built in outcome.built:
        if built.variant in quantized:
            built.recipe = {**built.recipe, "converter": converted.how}


def _at_fixed_shape(ctx: variants.Context, converted: Converted) -> variants.Context:
    """The gate's data at the file's one shape: synthetic data is drawn again at that shape
    (with fresh fp32 references); the user's own data must already have it."""
    from dataclasses import replace

    from edge.build.data import synthetic

    fixed = {s.name: s.shape for s in converted.inputs}

    def fits(d: Dataset) -> bool:
        return all(tuple(v.shape) == tuple(fixed[k]) for s in d.samples for k, v in s.items() if k in fixed)

    if fits(ctx.calibration) and fits(ctx.evaluation):
        return ctx
    if not (ctx.calibration.synthetic and ctx.evaluation.synthetic):
        raise UsageError(f"the calibration or evaluation data do not have the TFLite file's shape "
                         f"({', '.join(f'{k} {list(v)}' for k, v in fixed.items())})",
                         hint="give data of the shape the device will feed, or --dim to match the data")
    count = len(ctx.evaluation.samples)
    return replace(ctx, calibration=synthetic(converted.inputs, DimSizes(), len(ctx.calibration.samples), seed=100),
                   evaluation=synthetic(converted.inputs, DimSizes(), count, seed=200), _reference=None)


def convert(exported: Exported, ctx: variants.Context, inputs: list[TensorSpec], outputs: list[TensorSpec],
            dims: DimSizes, seen: list[Dataset | None] = ()) -> Converted:
    fixed = tflite.fixed_specs(inputs, with_seen(dims, inputs, [ctx.calibration, ctx.evaluation, *seen]))
    names = [s.name for s in outputs]
    if exported.module is not None:
        module, how = exported.module, "litert-torch"
    else:
        from edge.build.tflite.onnx_torch import to_torch

        ctx.on_progress("converting the ONNX graph to torch (onnx2torch)")
        module, how = to_torch(exported.onnx_path, {s.name: s.shape for s in fixed}), "onnx2torch + litert-torch"
    ctx.on_progress(f"converting to TFLite ({how})")
    path = ctx.workdir / "fp32.tflite"
    own = tflite.convert(module, fixed, names, path)
    litert = backend("litert").open(path)
    own_outputs = [TensorSpec(s.name, s.dtype, s.shape) for s in litert.outputs]
    out_fixed = [TensorSpec(o.name, o.dtype, next((x.shape for x in own_outputs if x.name == o.name), o.shape))
                 for o in outputs]
    return Converted(path, own, own_outputs, pinned(inputs, [s.to_json() for s in own]), out_fixed, how)


def validate(converted: Converted, exported: Exported, profile: Profile) -> ValidationReport:
    """The float32 file in LiteRT against the source model, on inputs of the file's shape."""
    from edge.build.data import varied

    samples = varied(converted.inputs, DimSizes(), profile.validation.samples)
    samples.origin = f"random, {len(samples.samples)} samples (seed 0) of the file's fixed shape"
    run = converted.runner(converted.path).run
    litert = backend("litert")
    return compare(exported.reference, run, samples.samples, profile.validation, reference=exported.reference_name,
                   runtime=f"LiteRT {litert.version()} (XNNPACK)", inputs=samples.origin)
