"""TFLite artifacts: litert-torch converts a torch module (no TensorFlow), ai-edge-quantizer
quantizes the float file, and the flatbuffer is read and edited with LiteRT's own schema.

TFLite files take one shape: every dynamic axis is fixed at conversion (batch 1 unless
``--dim`` says otherwise). 4-D NCHW image inputs are converted channels-last (NHWC), the
layout LiteRT's kernels compute in, so the file has no transpose at its input; the
manifest records both, and the runtime transposes what the caller gives. The signature's
names are set to the manifest's, so the file is self-describing outside edge too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edge.core.catalog import Variant
from edge.core.errors import ExportError, UnsupportedOpError, UsageError, require, first_line
from edge.core.specs import DimSizes, TensorSpec, is_batch

log = logging.getLogger(__name__)

# Ops that carry weights: the layers the repair can keep in float.
WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "EMBEDDING_LOOKUP", "BATCH_MATMUL")


def fixed_specs(specs: list[TensorSpec], dims: DimSizes) -> list[TensorSpec]:
    """The specs with every dynamic axis set: ``--dim`` first, a leading batch axis 1."""
    out = []
    for spec in specs:
        shape = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int):
                shape.append(d)
            elif d in dims.given:
                shape.append(dims.given[d])
            elif is_batch(d, axis):
                shape.append(1)
            else:
                raise UsageError(f"TFLite artifacts take one fixed shape, and axis '{d}' of input '{spec.name}' has no size",
                                 hint=f"pass --dim {d}=N (the size the device will feed), or --format onnx")
        out.append(TensorSpec(spec.name, spec.dtype, tuple(shape), spec.range, spec.layout, spec.finite))
    return out


def channels_last(spec: TensorSpec) -> bool:
    return len(spec.shape) == 4 and spec.layout == "NCHW" and spec.dtype.startswith("float")


def nhwc(spec: TensorSpec) -> TensorSpec:
    n, c, h, w = spec.shape
    return TensorSpec(spec.name, spec.dtype, (n, h, w, c), spec.range, "NHWC", spec.finite)


def stored_feeds(sample: dict[str, np.ndarray], specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """A manifest-form sample in the form the file's signature takes (NHWC, int32 ids)."""
    out = {}
    for spec in specs:
        value = sample[spec.name]
        if spec.layout == "NHWC" and value.ndim == 4:
            value = np.ascontiguousarray(value.transpose(0, 2, 3, 1))
        if value.dtype == np.int64:
            value = value.astype(np.int32)  # litert-torch writes int32 ids unless told otherwise
        out[spec.name] = value
    return out


def convert(module: Any, specs: list[TensorSpec], output_names: list[str], path: Path) -> list[TensorSpec]:
    """Write ``module`` (positional inputs in ``specs`` order) as a float32 .tflite at ``path``;
    returns the file's input specs (layout and dtype as stored)."""
    torch = require("torch")
    with quiet():  # its import prints C++ start-up chatter
        litert_torch = require("litert_torch", "tflite", package="litert-torch")
    last = [i for i, s in enumerate(specs) if channels_last(s)]
    own = [nhwc(s) if i in last else s for i, s in enumerate(specs)]
    sample = _example(specs)
    example = tuple(torch.from_numpy(a) for a in stored_feeds(sample, own).values())
    wrapped = litert_torch.to_channel_last_io(module, args=last).eval() if last else module.eval()
    try:
        with quiet():
            litert_torch.convert(wrapped, example).export(str(path))
    except Exception as exc:
        raise translate(exc, module, tuple(torch.from_numpy(sample[s.name]) for s in specs)) from exc
    rename_signature(path, [s.name for s in specs], output_names)
    return [TensorSpec(s.name, "int32" if s.dtype == "int64" else s.dtype, s.shape, s.range, s.layout, s.finite) for s in own]


def _example(specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    from edge.core.specs import random_inputs

    return random_inputs(specs, DimSizes(), 0, seed=1234)


def rename_signature(path: Path, inputs: list[str], outputs: list[str]) -> None:
    """Give the file's signature the manifest's names (litert-torch writes args_0, output_0...)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    signature = model.signatureDefs[0]
    if len(signature.inputs) != len(inputs) or len(signature.outputs) != len(outputs):
        raise ExportError(f"the converted file has {len(signature.inputs)} inputs and {len(signature.outputs)} outputs, "
                          f"the model {len(inputs)} and {len(outputs)}")
    for item, name in zip(sorted(signature.inputs, key=lambda t: _position(t.name)), inputs):
        item.name = name
    for item, name in zip(sorted(signature.outputs, key=lambda t: _position(t.name)), outputs):
        item.name = name
    fb.write_model(model, str(path))


def _position(name: bytes | str) -> int:
    text = name.decode() if isinstance(name, bytes) else name
    m = re.search(r"(\d+)$", text)
    return int(m.group(1)) if m else 0


def layers(path: Path) -> list[tuple[str, str, int]]:
    """(output tensor name, op, weight count) of every weighted op, in graph order.

    ai-edge-quantizer selects ops by a regex over their output tensor's name: that name is
    the layer's handle for the repair (litert-torch names it after the torch module path)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    found = []
    for op in graph.operators:
        kind = fb.opcode_to_name(model, op.opcodeIndex)
        if kind not in WEIGHTED_OPS:
            continue
        weights = sum(int(np.prod(graph.tensors[i].shape)) for i in op.inputs
                      if i >= 0 and graph.tensors[i].buffer and _has_data(model, graph.tensors[i].buffer))
        if weights:
            name = graph.tensors[op.outputs[0]].name
            found.append((name.decode() if isinstance(name, bytes) else name, kind, weights))
    return found


def _has_data(model: Any, buffer: int) -> bool:
    b = model.buffers[buffer]
    return (b.data is not None and len(b.data) > 0) or bool(getattr(b, "size", 0))


def short(layer: str) -> str:
    """A readable layer name: the last torch module of litert-torch's path."""
    last = layer.split(";")[0].rstrip("/").split("/")[-1]
    return last.split(".")[-1] or layer


def quantize(source: Path, out: Path, variant: Variant, calibration: list[dict[str, np.ndarray]],
             keep_float: list[str]) -> dict[str, Any]:
    """Quantize the float file as ``variant`` says; ``keep_float`` layers stay float."""
    require("ai_edge_quantizer", "tflite", package="litert-torch")
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if variant.weights == "per-channel" else qtyping.QuantGranularity.TENSORWISE
    q = quantizer.Quantizer(str(source))
    if variant.precision == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=ops.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif variant.precision == "int8-dynamic":
        q.add_dynamic_config(regex=".*", operation_name=ops.ALL_SUPPORTED, num_bits=8, granularity=granularity)
    elif variant.precision == "int8-static":
        q.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8,
                            weight_granularity=granularity)
    else:
        raise UsageError(f"variant '{variant.name}': TFLite has no precision '{variant.precision}'")
    for layer in keep_float:
        # the scope ai-edge-quantizer matches is the op's output names, each followed by ";"
        q.update_quantization_recipe(regex=f"^{re.escape(layer)};", operation_name=ops.ALL_SUPPORTED,
                                     algorithm_key=AlgorithmName.NO_QUANTIZE)
    try:
        with quiet():
            result = q.calibrate({"serving_default": calibration}, num_threads=os.cpu_count() or 1) if q.need_calibration else None
            q.quantize(result).export_model(str(out), overwrite=True)
    except Exception as exc:  # ai-edge-quantizer raises ValueError/RuntimeError/KeyError for what it cannot do
        raise ExportError(f"ai-edge-quantizer could not quantize '{variant.name}': {first_line(exc)}",
                          hint="leave this variant out (--variant), or use the ONNX artifact") from exc
    return {
        "tool": f"ai-edge-quantizer {_version('ai-edge-quantizer')}",
        "precision": variant.precision, "weights": variant.weights,
        "calibration_samples": len(calibration) if variant.precision == "int8-static" else 0,
        "io": "int8 (quantized and dequantized by the runtime)" if variant.precision == "int8-static" else "float32",
        "kept_in_float": [short(k) for k in keep_float],
    }


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """litert-torch and the quantizer print progress from Python and C++ (to the file
    descriptors, not sys.stdout): keep it for --debug instead of the terminal."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, open(os.devnull, "w") as python_sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(python_sink), contextlib.redirect_stderr(python_sink):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            log.debug("converter output:\n%s", sink.read().decode(errors="replace")[-20000:])


_ATEN = re.compile(r"(aten[.:]+\w+(?:\.\w+)?)")


def translate(exc: Exception, module: Any, example: tuple) -> ExportError:
    """A conversion error as one line naming the op (and its module) where one can be found."""
    text = str(exc)
    op = _ATEN.search(text)
    if op or isinstance(exc, NotImplementedError):
        name = op.group(1).replace("::", ".") if op else first_line(exc)
        from edge.exporters._torch import module_of

        where = module_of(module, example, name) if op else ""
        return UnsupportedOpError(f"litert-torch cannot convert {name}{where} to TFLite",
                                  hint="use the ONNX artifact instead (--format onnx), or replace that op")
    return ExportError(f"litert-torch could not convert the model to TFLite: {first_line(exc)}",
                       hint="use the ONNX artifact instead (--format onnx); --debug shows the converter's output")
