"""ONNX quantization recipes (from profile data) through onnxruntime's quantization tools.

One function, ``quantize(fp32, out, variant, calibration, keep_float)``, for every precision:
fp16 (onnxruntime.transformers.float16, inputs and outputs kept fp32), int8 dynamic
(weights quantized ahead, activations at run time by DynamicQuantizeLinear, which is always
u8) and int8 static in QDQ format with calibration. ``keep_float`` names nodes the repair
step keeps in float.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from edge.build import onnxfile
from edge.core.catalog import WEIGHT_ONLY, Variant
from edge.build.data import Dataset
from edge.core.errors import ExportError, require

log = logging.getLogger(__name__)


def quantizable_nodes(model: Any, variant: Variant) -> list[str]:
    """Names of the fp32 graph's nodes this recipe quantizes (the candidates for repair)."""
    if variant.precision in ("fp32", "fp16"):
        return []
    ops = set(_op_types(variant))
    constants = {t.name for t in model.graph.initializer} | {
        n.output[0] for n in model.graph.node if n.op_type == "Constant"
    }
    names = []
    for node in model.graph.node:
        if node.op_type not in ops or node.name in variant.exclude_nodes:
            continue
        # Dynamic quantization only touches nodes with a constant weight (MatMulConstBOnly).
        if variant.precision == "int8-dynamic" and not any(i in constants for i in node.input):
            continue
        names.append(node.name)
    return names


def weight_counts(model: Any) -> dict[str, int]:
    """Node name -> number of weights (constant inputs' elements) it holds."""
    import math

    sizes = {t.name: math.prod(t.dims) for t in model.graph.initializer}
    return {n.name: sum(sizes.get(i, 0) for i in n.input) for n in model.graph.node}


def not_applicable(model: Any, variant: Variant, language_model: bool = False) -> str | None:
    """Why this recipe does not apply to the model, or None when it does. ``applies_to_ops`` is read
    on the ONNX graph for every format; which layers can be quantized only for ONNX variants (a TFLite
    variant's layers are the file's own weighted ops: ``FULLY_CONNECTED`` for a Gemm, say)."""
    if (variant.precision in WEIGHT_ONLY) != language_model:
        return ("weight-only int8/int4 is built for language models (a causal LM folder or a GGUF file)"
                if not language_model else "a language model gets weight-only int8/int4 variants")
    if language_model:
        return None
    if variant.applies_to_ops and not {n.op_type for n in model.graph.node} & set(variant.applies_to_ops):
        return f"applies to models with {' or '.join(variant.applies_to_ops)}, and this one has none"
    if variant.format == "onnx" and variant.precision not in ("fp32", "fp16") and not quantizable_nodes(model, variant):
        return f"nothing to quantize: no {', '.join(_op_types(variant))} node with constant weights"
    return None


def _op_types(variant: Variant) -> list[str]:
    registry = require("onnxruntime.quantization.registry", "export")
    if variant.op_types:
        ops = list(variant.op_types)
    elif variant.precision == "int8-dynamic":
        ops = list(registry.IntegerOpsRegistry)
    else:
        ops = list(registry.QDQRegistry)
    return [o for o in ops if o not in variant.exclude_ops]


def quantize(fp32: Path, out: Path, variant: Variant, calibration: Dataset | None, keep_float: list[str]) -> dict[str, Any]:
    """Write the quantized model to ``out``; returns the recipe as applied, for the manifest."""
    exclude = sorted(set(variant.exclude_nodes) | set(keep_float))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization advises on the root logger at every call
    try:
        if variant.precision == "fp16":
            return _fp16(fp32, out, variant, exclude)
        if variant.precision == "int8-dynamic":
            return _dynamic(fp32, out, variant, exclude)
        if variant.precision == "int8-static":
            return _static(fp32, out, variant, calibration, exclude)
    except Exception as exc:
        if getattr(exc, "exit_code", None):
            raise
        raise ExportError(f"quantizing variant '{variant.name}' ({variant.precision}) failed: {exc}") from exc
    finally:
        root.setLevel(level)
    raise ExportError(f"variant '{variant.name}': precision {variant.precision} has no ONNX recipe")


def _qtype(name: str):
    q = require("onnxruntime.quantization")
    return q.QuantType.QInt8 if name == "s8" else q.QuantType.QUInt8


def _dynamic(fp32: Path, out: Path, variant: Variant, exclude: list[str]) -> dict[str, Any]:
    q = require("onnxruntime.quantization")
    # The dynamic quantizer first rewrites Gemm as MatMul + Add, naming the MatMul "<gemm>_MatMul",
    # and only then applies nodes_to_exclude: name both, or a kept-in-float Gemm gets quantized.
    names = exclude + [f"{n}_MatMul" for n in exclude]
    q.quantize_dynamic(
        fp32, out, op_types_to_quantize=_op_types(variant), per_channel=variant.weights == "per-channel",
        reduce_range=variant.reduce_range, weight_type=_qtype(variant.weight_type), nodes_to_exclude=names,
        extra_options={"MatMulConstBOnly": True},
    )
    return {
        "tool": _tool(), "mode": "dynamic", "weights": f"{variant.weight_type} {variant.weights}",
        "activations": "u8, quantized per tensor at run time (DynamicQuantizeLinear)",
        "reduce_range": variant.reduce_range, "op_types": _op_types(variant), "kept_in_float": exclude,
    }


class _Reader:
    """onnxruntime's CalibrationDataReader over a Dataset."""

    def __init__(self, samples: list[dict]) -> None:
        self._iter = iter(samples)

    def get_next(self):
        return next(self._iter, None)


def _static(fp32: Path, out: Path, variant: Variant, calibration: Dataset | None, exclude: list[str]) -> dict[str, Any]:
    q = require("onnxruntime.quantization")
    if calibration is None or not calibration.samples:
        raise ExportError(f"variant '{variant.name}' is static int8 and needs calibration data")
    methods = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
               "percentile": q.CalibrationMethod.Percentile}
    notes = []
    with tempfile.TemporaryDirectory(prefix="edge-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # When its symbolic shape inference fails, quant_pre_process leaves a <uuid>.data file
            # in the current directory: run it from the scratch folder.
            with _inside(tmp):
                q.quant_pre_process(str(fp32), str(prepared), skip_optimization=False)
        except Exception as exc:  # pre-processing is an optimisation; quantize the graph as it is
            log.warning("quant_pre_process failed (%s); quantizing without it", exc)
            prepared = fp32
        graph = require("onnx").load(str(prepared))
        if onnxfile.opset(graph) < 13:
            # Per-channel QDQ needs DequantizeLinear's axis (opset 13).
            notes.append(_upgrade(graph, Path(tmp) / "opset13.onnx"))
            prepared = Path(tmp) / "opset13.onnx"
        q.quantize_static(
            prepared, out, _Reader(calibration.samples), quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=_op_types(variant), per_channel=variant.weights == "per-channel",
            reduce_range=variant.reduce_range, activation_type=_qtype(variant.activation_type),
            weight_type=_qtype(variant.weight_type), nodes_to_exclude=exclude,
            calibrate_method=methods[variant.calibration],
            extra_options={"ActivationSymmetric": variant.activation_type == "s8"},
        )
    return {
        "tool": _tool(), "mode": "static QDQ", "weights": f"{variant.weight_type} {variant.weights}",
        "activations": f"{variant.activation_type} per tensor, calibrated ({variant.calibration}) on {calibration.origin}",
        "reduce_range": variant.reduce_range, "op_types": _op_types(variant), "kept_in_float": exclude,
        "notes": notes,
    }


@contextlib.contextmanager
def _inside(folder: str):
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _upgrade(model: Any, dst: Path) -> str:
    onnx = require("onnx")
    from onnx import version_converter

    before = onnxfile.opset(model)
    try:
        converted = version_converter.convert_version(model, 13)
    except Exception as exc:
        raise ExportError(f"static int8 needs opset 13; converting this opset-{before} model failed: {exc}",
                          hint="re-export the model at opset 13 or later, or use the int8 (dynamic) variant") from exc
    onnx.save(converted, str(dst))
    return f"opset {before} upgraded to 13 for per-channel QDQ"


def _fp16(fp32: Path, out: Path, variant: Variant, exclude: list[str]) -> dict[str, Any]:
    onnx = require("onnx")
    float16 = require("onnxruntime.transformers.float16")
    model = float16.convert_float_to_float16(
        onnx.load(str(fp32)), keep_io_types=True, op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + variant.exclude_ops,
        node_block_list=exclude or None,
    )
    onnx.save(model, str(out))
    return {"tool": _tool(), "mode": "fp16 weights and arithmetic, fp32 inputs and outputs", "kept_in_float": exclude}


def _tool() -> str:
    import onnxruntime

    return f"onnxruntime.quantization {onnxruntime.__version__}"
