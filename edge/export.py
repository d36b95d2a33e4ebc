"""``export(source, target, profile, options)``: a model in, a validated bundle out.

The exporter (chosen by the source) only produces an ONNX file and a reference runner;
everything after it is shared: check, simplify where outputs stay equal, validate every
artifact in onnxruntime against the source framework, write the bundle atomically.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from edge import __version__, catalog, onnxfile, schema
from edge import exporters as registry
from edge.bundle import Artifact, Manifest, SCHEMA_VERSION, sha256_file, staged, write_manifest
from edge.errors import InputNotFoundError, OutputExistsError, UsageError, ValidationError
from edge.exporters.base import Exported, ExportRequest
from edge.runtime import backend
from edge.specs import DimSizes, TensorSpec, check_inputs, parse_spec, random_inputs
from edge.validate import ValidationReport, compare, describe

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
    strict: bool = True
    force: bool = False
    simplify: bool = True
    on_progress: Callable[[str], None] = lambda step: None


def export(source: str, target: catalog.Target, profile: catalog.Profile, options: ExportOptions) -> Manifest:
    """Export ``source`` for ``target`` as ``profile`` says; returns the manifest written."""
    if Path(options.output).exists() and not options.force:
        raise OutputExistsError(f"{options.output} already exists", hint="choose another -o or pass --force to replace it")
    step = options.on_progress
    exporter = registry.for_source(source)
    if exporter.name != "pytorch" and not Path(source).exists():
        raise InputNotFoundError(f"no such file or folder: {source}", hint="check the path")
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
        inputs = _with_ranges(inputs, exported.inputs)
        samples, origin = _samples(inputs, dims, profile.validation.samples, options.sample_inputs)
        path, build = _simplified(model, exported, samples, work, options.simplify, step)
        step("validating in onnxruntime")
        report = _validate(path, exported, samples, origin, profile)
        if not report.passed and options.strict:
            name, worst = report.worst()
            raise ValidationError(
                f"output '{name}' differs from {exported.reference_name}: {describe(worst)} (tolerance atol "
                f"{profile.validation.atol:g}, rtol {profile.validation.rtol:g}, min cosine {profile.validation.min_cosine:g})",
                hint="pass --no-strict to keep the bundle anyway, or loosen [validation] in a profile",
            )
        step(f"writing {options.output}")
        with staged(Path(options.output), options.force) as stage:
            artifact = stage / f"model.{_reference_variant(profile).name}.onnx"
            shutil.copyfile(path, artifact)
            manifest = _manifest(exported, model, inputs, outputs, target, profile, artifact, build, report)
            write_manifest(stage, manifest)
    return manifest


def _with_ranges(graph_specs: list[TensorSpec], declared: list[TensorSpec]) -> list[TensorSpec]:
    """The graph's specs (the truth about names and shapes) with the source's ranges and layouts."""
    by_name = {s.name: s for s in declared}
    out = []
    for spec in graph_specs:
        src = by_name.get(spec.name)
        out.append(TensorSpec(spec.name, spec.dtype, spec.shape, src.range, src.layout) if src else spec)
    return out


def _samples(specs: list[TensorSpec], dims: DimSizes, count: int, path: Path | None) -> tuple[list[dict], str]:
    if path is None:
        return [random_inputs(specs, dims, i) for i in range(count)], f"random, {count} samples (seed 0, dynamic axes varied)"
    if not Path(path).is_file():
        raise InputNotFoundError(f"no such file: {path}", hint="--sample-inputs takes an .npz with one array per input name")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path} is not a readable .npz file: {exc}") from exc
    check_inputs(specs, arrays, str(path))
    return [{s.name: arrays[s.name] for s in specs}], f"file {Path(path).name}"


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


def _validate(path: Path, exported: Exported, samples, origin: str, profile: catalog.Profile) -> ValidationReport:
    ort = backend("onnxruntime")
    session = ort.open(path, optimization=profile.runtime.graph_optimization)
    return compare(
        exported.reference, session.run, samples, profile.validation,
        reference=exported.reference_name, runtime=f"onnxruntime {ort.version()}", inputs=origin,
    )


def _reference_variant(profile: catalog.Profile) -> catalog.Variant:
    """The fp32 ONNX variant: always built, it is what every other variant is checked against."""
    found = [v for v in profile.variants if v.format == "onnx" and v.precision == "fp32"]
    return found[0] if found else catalog.Variant(name="fp32")


def _manifest(exported, model, inputs, outputs, target, profile, artifact_path: Path, build, report) -> Manifest:
    variant = _reference_variant(profile)
    skipped = [
        {"variant": v.name, "format": v.format, "precision": v.precision,
         "reason": f"{v.format} {v.precision} is not built by edge {__version__} yet"}
        for v in profile.variants if v is not variant
    ]
    artifact = Artifact(
        name=variant.name, format="onnx", path=artifact_path.name, size=artifact_path.stat().st_size,
        sha256=sha256_file(artifact_path), precision="fp32", opset=onnxfile.opset(model),
        build=build, validation=report.to_json(),
    )
    return Manifest(
        schema_version=SCHEMA_VERSION,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=exported.source,
        target=schema.to_dict(target),
        profile=schema.to_dict(profile),
        inputs=[s.to_json() for s in inputs],
        outputs=[s.to_json() for s in outputs],
        artifacts=[artifact],
        tools={**_tool_versions(), **exported.tools},
        skipped=skipped,
        notes=[] if report.passed else ["validation FAILED and the bundle was kept because of --no-strict"],
    )


def _tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxslim

    return {"edge": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "onnxslim": onnxslim.__version__}
