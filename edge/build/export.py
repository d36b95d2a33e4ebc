"""``export(source, target, profile, options)``: a model in, a validated bundle out.

The exporter (chosen by the source) only produces an ONNX file and a reference runner;
everything after it is shared: check, simplify where outputs stay equal, validate every
artifact in onnxruntime against the source framework, write the bundle atomically.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

from edge import __version__
from edge.core import catalog
from edge.build import data, onnxfile, variants
from edge.build import gate as gates
from edge import exporters as registry
from edge.core.bundle import Artifact, Manifest, SCHEMA_VERSION, sha256_file, staged, write_manifest
from edge.core.errors import InputNotFoundError, InputsRefusedError, OutputExistsError, UsageError, ValidationError
from edge.exporters.base import Exported, ExportRequest
from edge.device.runtime import backend
from edge.core.specs import DimSizes, TensorSpec, guess_layout, parse_spec, text_length
from edge.build.validate import ValidationReport, compare, describe

log = logging.getLogger(__name__)

# Simplification must not change outputs beyond float rounding.
_SIMPLIFY_TOLERANCE = catalog.Tolerance(atol=1e-5, rtol=1e-4, min_cosine=0.99999)


@dataclass(frozen=True)
class ExportOptions:
    output: Path
    inputs: tuple[str, ...] = ()  # spec strings; override what the source says
    outputs: tuple[str, ...] = ()
    dims: dict[str, int] = field(default_factory=dict)
    task: str | None = None
    sample_inputs: Path | None = None
    calib_data: Path | None = None
    eval_data: Path | None = None
    preprocess: str | None = None
    gate: dict[str, Any] = field(default_factory=dict)  # overrides of the profile's [gate]
    variants: tuple[str, ...] = ()  # build only these (default: all of the profile's)
    formats: tuple[str, ...] = ()  # build only artifacts of these formats (default: all the profile has)
    strict: bool = True
    force: bool = False
    simplify: bool = True
    on_progress: Callable[[str], None] = lambda step: None


def export(source: str, target: catalog.Target, profile: catalog.Profile, options: ExportOptions) -> Manifest:
    """Export ``source`` for ``target`` as ``profile`` says; returns the manifest written."""
    if Path(options.output).exists() and not options.force:
        raise OutputExistsError(f"{options.output} already exists", hint="choose another -o or pass --force to replace it")
    step = options.on_progress
    from edge.build.llm.source import is_causal_lm

    if is_causal_lm(source):  # a decoder with a KV cache, judged by the text it writes: a pipeline of its own
        from edge.build.llm.export import export as export_language_model

        return export_language_model(source, target, profile, options)
    exporter = registry.for_source(source)
    if exporter.name != "pytorch" and not Path(source).exists():
        raise InputNotFoundError(f"no such file or folder: {source}", hint="check the path")
    wanted = variants.wanted(profile, options.variants, options.formats)
    dims = DimSizes(dict(options.dims))
    with tempfile.TemporaryDirectory(prefix="edge-export-") as tmp:
        work = Path(tmp)
        step(f"exporting {source} ({exporter.name})")
        request = ExportRequest(
            work, profile.opset, [parse_spec(s) for s in options.inputs], list(options.outputs), dims, options.task
        )
        exported = exporter.export(source, request)
        model = onnxfile.load_checked(exported.onnx_path)
        inputs, outputs = onnxfile.io_specs(model)
        dims = _fixed_by_specs(dims, inputs, request.inputs)
        inputs = _with_ranges(inputs, exported.inputs)
        tokenizer = Path(source) if exported.source.get("kind") == "transformers" else None
        load = partial(_dataset, specs=inputs, dims=dims, tokenizer=tokenizer, preprocess=options.preprocess)
        validation = load(options.sample_inputs) or data.varied(inputs, dims, profile.validation.samples)
        try:
            fp32, build = _simplified(model, exported, validation.samples, work, options.simplify, step)
            step("validating in onnxruntime")
            report = _validate(fp32, exported, validation, profile)
        except InputsRefusedError as exc:
            if options.sample_inputs:
                raise
            raise _refused_random(exc, inputs) from exc
        if not report.passed and options.strict:
            name, worst = report.worst()
            raise ValidationError(
                f"output '{name}' differs from {exported.reference_name}: {describe(worst)} (tolerance atol "
                f"{profile.validation.atol:g}, rtol {profile.validation.rtol:g}, min cosine {profile.validation.min_cosine:g})",
                hint="pass --no-strict to keep the bundle anyway, or loosen [validation] in a profile",
            )
        outcome = _variants(wanted, profile, options, fp32, work, exported, inputs, outputs, dims, load, target, validation)
        step(f"writing {options.output}")
        with staged(Path(options.output), options.force) as stage:
            manifest = _manifest(exported, model, inputs, outputs, target, profile, stage, fp32, build, report, outcome)
            manifest.preprocessing = _preprocessing(stage, tokenizer, dims, inputs, options.preprocess)
            # the sizes the device will feed, as far as the user said or showed them: edge profile's default
            manifest.dims = data.with_seen(dims, inputs, [validation, *outcome.data]).given
            write_manifest(stage, manifest)
    return manifest


def _variants(wanted, profile, options, fp32, work, exported, inputs, outputs, dims, load, target,
              validation: data.Dataset) -> variants.Outcome:
    """Build every non-fp32 variant the profile asks for, each through the accuracy gate."""
    outcome = variants.Outcome()
    todo = [v for v in wanted if v != variants.reference_variant(profile)]
    if not todo:
        return outcome
    gate = replace(profile.gate, **{k: v for k, v in options.gate.items() if v is not None})
    calibration = load(options.calib_data) or data.synthetic(inputs, dims, gate.samples, seed=100)
    held_out = load(options.eval_data) or (
        calibration if options.calib_data else data.synthetic(inputs, dims, gate.samples, seed=200))
    # On synthetic inputs a classifier's top-1 is ill-posed (random inputs sit near decision
    # boundaries): compare the outputs numerically instead, as the warning says.
    kind = "generic" if held_out.synthetic else gates.kind_for(gate, exported.source.get("task"), outputs)
    ctx = variants.Context(fp32, work, gate, kind, calibration, held_out, options.on_progress)
    outcome.data = [calibration, held_out]
    variants.build_all([v for v in todo if v.format == "onnx"], ctx, options.strict, outcome)
    tflite = [v for v in todo if v.format == "tflite"]
    if tflite:
        from edge.build.tflite import build as tflite_build

        tflite_build.build(tflite, ctx, exported, profile, (inputs, outputs), dims, options.strict, outcome, [validation],
                           explicit="tflite" in options.formats)
    variants.measure(target, profile, fp32, held_out, outcome, options.on_progress)
    return outcome


def _fixed_by_specs(dims: DimSizes, graph_specs: list[TensorSpec], given: list[TensorSpec]) -> DimSizes:
    """``dims`` plus the sizes ``--input`` fixes where the graph leaves an axis open (an ONNX
    file's ``input[?,?]`` given as ``--input 'input:float32[1,512]'``): validation and the
    TFLite file then use them, and the ONNX artifacts keep the axis open."""
    by_name = {s.name: s for s in given}
    sizes = dict(dims.given)
    for spec in graph_specs:
        declared = by_name.get(spec.name)
        if declared is None or len(declared.shape) != len(spec.shape):
            continue
        for axis, (open_axis, size) in enumerate(zip(spec.shape, declared.shape)):
            if isinstance(open_axis, str) and isinstance(size, int):
                if sizes.setdefault(open_axis, size) != size:
                    raise UsageError(f"--input {spec.name} sets axis {axis} ('{open_axis}') to {size}, "
                                     f"which --dim or another input sets to {sizes[open_axis]}",
                                     hint="give each axis one size")
    return DimSizes(sizes)


def _refused_random(exc: InputsRefusedError, inputs: list[TensorSpec]) -> UsageError:
    """The error for a model that refuses random inputs (a value it checks, such as a sample
    rate): what it said, and how to give inputs it takes."""
    def spec(s: TensorSpec, shape=None) -> str:
        return f"{s.name}:{s.dtype}[{','.join(map(str, shape or s.shape))}]"

    scalar = next((s for s in inputs if not s.shape), inputs[0])
    examples = [f"--input '{spec(scalar)}:LOW..HIGH'"] + [
        f"--input '{spec(s, [d if isinstance(d, int) else 'N' for d in s.shape])}'"
        for s in inputs[:2] if s is not scalar and any(isinstance(d, str) for d in s.shape)]
    return UsageError(
        f"the model refused the random inputs edge validates with ({', '.join(spec(s) for s in inputs)}): {exc.message}",
        hint=f"give real inputs with --sample-inputs FILE.npz (one array per input), or the value ranges and sizes "
             f"it takes with --input, e.g. {' '.join(examples)}",
    )


def _with_ranges(graph_specs: list[TensorSpec], declared: list[TensorSpec]) -> list[TensorSpec]:
    """The graph's specs (the truth about names and shapes) with the source's ranges and layouts."""
    by_name = {s.name: s for s in declared}
    out = []
    for spec in graph_specs:
        src = by_name.get(spec.name) or spec
        # A NaN in a float input is a caller's bug far more often than a feature: refuse it.
        layout = src.layout or guess_layout(spec)
        out.append(TensorSpec(spec.name, spec.dtype, spec.shape, src.range, layout, spec.dtype.startswith("float")))
    return out


def _dataset(path: Path | None, *, specs, dims, tokenizer, preprocess) -> data.Dataset | None:
    if path is None:
        return None
    return data.load(path, specs, tokenizer_dir=tokenizer, dims=dims, preprocess=data.Preprocess.parse(preprocess))


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _preprocessing(stage: Path, tokenizer: Path | None, dims: DimSizes, inputs, preprocess: str | None) -> dict[str, Any]:
    """What the runtime needs to turn raw text or images into inputs, carried in the bundle."""
    out: dict[str, Any] = {}
    files = [f for f in TOKENIZER_FILES if tokenizer is not None and (tokenizer / f).is_file()]
    if files:
        (stage / "tokenizer").mkdir()
        for name in files:
            shutil.copyfile(tokenizer / name, stage / "tokenizer" / name)
        out["text"] = {"tokenizer": "tokenizer/tokenizer.json", "max_length": text_length(inputs, dims)}
    if preprocess:
        pre = data.Preprocess.parse(preprocess)
        out["image"] = {"scale": pre.scale, "mean": list(pre.mean), "std": list(pre.std)}
    return out


def _simplified(model, exported: Exported, samples, work: Path, enabled: bool, step) -> tuple[Path, dict]:
    build = dict(exported.build)
    if not enabled:
        build["simplify"] = {"applied": False, "reason": "--no-simplify"}
        return exported.onnx_path, build
    step("simplifying (onnxslim)")
    import onnxslim

    before = onnxfile.node_count(model)
    try:
        slim = onnxfile.simplify(model)
    except Exception as exc:  # onnxslim failing is not the user's problem: keep the original
        log.warning("onnxslim failed, keeping the graph as exported: %s", exc)
        build["simplify"] = {"applied": False, "tool": f"onnxslim {onnxslim.__version__}", "reason": f"onnxslim failed: {exc}"}
        return exported.onnx_path, build
    path = work / "slim.onnx"
    onnxfile.save(slim, path)
    ort = backend("onnxruntime")
    check = compare(
        ort.open(exported.onnx_path, optimization="disable").run, ort.open(path, optimization="disable").run,
        samples, _SIMPLIFY_TOLERANCE, reference="exported graph", runtime="simplified graph", inputs="",
    )
    info = {"tool": f"onnxslim {onnxslim.__version__}", "nodes_before": before, "nodes_after": onnxfile.node_count(slim)}
    if not check.passed:
        name, worst = check.worst()
        build["simplify"] = {**info, "applied": False, "reason": f"changed output '{name}': {describe(worst)}"}
        return exported.onnx_path, build
    build["simplify"] = {**info, "applied": True, "max_abs_diff": max(o.max_abs_diff for o in check.outputs.values())}
    return path, build


def _validate(path: Path, exported: Exported, dataset: data.Dataset, profile: catalog.Profile) -> ValidationReport:
    ort = backend("onnxruntime")
    session = ort.open(path, optimization=profile.runtime.graph_optimization)
    return compare(
        exported.reference, session.run, dataset.samples, profile.validation,
        reference=exported.reference_name, runtime=f"onnxruntime {ort.version()}", inputs=dataset.origin,
    )


def _manifest(exported: Exported, model, inputs, outputs, target, profile, stage: Path, fp32: Path, build,
              report: ValidationReport, quantized: variants.Outcome) -> Manifest:
    reference = variants.reference_variant(profile)
    artifacts = [_artifact(stage, fp32, reference, "fp32", onnxfile.opset(model), build, report.to_json(), None,
                           quantized.fp32_latency)]
    for b in quantized.built:
        extra = dict(b.extra)
        build = {"quantization": b.recipe} if b.variant.precision != "fp32" else b.recipe
        artifacts.append(_artifact(stage, b.path, b.variant, b.variant.precision, onnxfile.opset(model), build,
                                   extra.pop("validation", {}), b.gate or None, b.latency, extra))
    notes = list(quantized.notes)
    if not report.passed:
        notes.insert(0, "validation FAILED and the bundle was kept because of --no-strict")
    return Manifest(
        schema_version=SCHEMA_VERSION,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=exported.source,
        target=target,
        profile=profile,
        inputs=[s.to_json() for s in inputs],
        outputs=[s.to_json() for s in outputs],
        artifacts=artifacts,
        tools={**_tool_versions(), **exported.tools},
        skipped=quantized.skipped,
        notes=notes,
        evaluation=quantized.evaluation,
        preferred=variants.preference(artifacts, list(profile.runtime.preference)),
    )


def _artifact(stage: Path, path: Path, variant: catalog.Variant, precision: str, opset: int, build: dict,
              validation: dict, gate: dict | None, latency: dict | None, extra: dict | None = None) -> Artifact:
    """``extra``: the fields a format adds (TFLite: format, ops, its own input/output specs, layouts)."""
    extra = extra or {}
    fmt = extra.get("format", "onnx")
    name = f"model.{variant.name}.{fmt}"
    shutil.copyfile(path, stage / name)
    return Artifact(
        name=variant.name, format=fmt, path=name, size=(stage / name).stat().st_size,
        sha256=sha256_file(stage / name), precision=precision, opset=opset if fmt == "onnx" else None, build=build,
        validation=validation, gate=gate, latency=latency,
        **{k: v for k, v in extra.items() if k != "format"},
    )


def _tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxslim

    return {"edge": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "onnxslim": onnxslim.__version__}
