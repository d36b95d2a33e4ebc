"""ONNX -> torch module through onnx2torch, so an existing ONNX file can become TFLite with
litert-torch like any PyTorch model (no TensorFlow, no onnx2tf environment; see
docs/tflite.md). What onnx2torch's output needs first, each found on a real model:

- onnx2torch imports torchvision for its NMS and RoIAlign converters, and PyPI's torchvision
  is a CUDA build that cannot load beside the CPU torch: a stand-in module is used when the
  real one does not import (a model with those ops then fails, naming them).
- weights held in ``Constant`` nodes (Paddle's exporter) become initializers, which is where
  onnx2torch's Conv converter looks for them.
- a graph that computes shapes from its input's size (a YOLOv8 head: Shape -> Gather -> Range,
  Resize to computed sizes) is folded at the one shape the TFLite file will have
  (``fold_shapes``), and the modules that read constant tensors at run time are made static
  (``onnx_static``): torch.export stops on both as "data-dependent".
- converters onnx2torch lacks: LSTM (``onnx_rnn``; the Silero voice-activity detector), and
  Split-18 / Resize-18 (opset 18, Ultralytics' default), which its opset-13 converters serve.
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import Any

from edge.build.tflite import onnx_rnn, onnx_static
from edge.core.errors import MissingDependencyError, UnsupportedOpError, require, first_line

log = logging.getLogger(__name__)


def to_torch(path: Path, sizes: dict[str, tuple[int, ...]] | None = None) -> Any:
    """The ONNX file at ``path`` as a torch.fx GraphModule taking its inputs positionally;
    ``sizes`` (input name -> fixed shape) folds every shape computation at those sizes first."""
    onnx = require("onnx")
    torch = require("torch")
    standin = _torchvision_standin()
    try:
        import onnx2torch
    except ImportError as exc:
        raise MissingDependencyError("an ONNX source needs onnx2torch for TFLite, which is not installed",
                                     hint="pip install --no-deps onnx2torch==1.5.15 (its torchvision dependency "
                                          "breaks beside CPU torch), or --format onnx") from exc
    finally:
        if standin:  # onnx2torch holds it now; others (transformers) must not find a torchvision
            for name in ("torchvision", "torchvision.ops"):
                sys.modules.pop(name, None)
    _opset_18()
    onnx_rnn.register()
    model = onnx.load(str(path))
    if sizes:
        model = fold_shapes(model, sizes)
    model = _constants_to_initializers(model)
    try:
        module = onnx2torch.convert(model)
    except NotImplementedError as exc:  # onnx2torch: "Converter is not implemented (OperationDescription(...))"
        raise UnsupportedOpError(f"onnx2torch cannot convert {_op_of(str(exc))} to torch, so no TFLite artifact",
                                 hint="use the ONNX artifact instead (--format onnx)") from exc
    with torch.no_grad():
        return onnx_static.made_static(module.eval())


def _op_of(text: str) -> str:
    import re

    m = re.search(r"operation_type='?(\w+)'?.*?version=(\d+)", text)
    return f"op {m.group(1)} (opset {m.group(2)})" if m else first_line(Exception(text), 200)


def _torchvision_standin() -> bool:
    """Put a stand-in torchvision in sys.modules when the real one does not import; True if so."""
    if "onnx2torch" in sys.modules:
        return False
    try:
        import torchvision  # noqa: F401
        return False
    except Exception:  # ImportError, or RuntimeError from a CUDA build beside CPU torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    def unavailable(*args, **kwargs):
        raise NotImplementedError("torchvision is not usable here: NMS and RoIAlign cannot be converted")

    package = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.batched_nms = ops.roi_align = ops.box_convert = unavailable
    package.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = package, ops
    return True


def _constants_to_initializers(model: Any) -> Any:
    import onnx

    kept = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def fold_shapes(model: Any, sizes: dict[str, tuple[int, ...]]) -> Any:
    """A copy of ``model`` with its inputs fixed at ``sizes`` and every shape computation folded
    to constants by onnxslim (which also drops the Identity nodes that alias shared weights, where
    onnx2torch's Conv converter does not look for a bias)."""
    onnx = require("onnx")
    from edge.build import onnxfile

    out = onnx.ModelProto()
    out.CopyFrom(model)
    weights = {t.name for t in out.graph.initializer}
    for value in out.graph.input:
        if value.name in weights or value.name not in sizes:
            continue
        for dim, size in zip(value.type.tensor_type.shape.dim, sizes[value.name]):
            dim.dim_value = int(size)  # replaces dim_param
    del out.graph.value_info[:]  # symbolic shapes inferred before: stale now
    try:
        return onnxfile.simplify(out)
    except Exception as exc:  # onnxslim failing is not the user's problem: convert the graph as it is
        log.warning("folding shapes with onnxslim failed, converting the graph unfolded: %s", first_line(exc))
        return out


def _opset_18() -> None:
    """onnx2torch 1.5.15 has no converters for Split-18 and Resize-18/19 (opset 18 is the default
    of recent exporters, Ultralytics' among them), and onnx's version converter has no adapter
    down from Split-18. Split-18 only added ``num_outputs``, which onnx2torch's Split-13 module
    takes from the node's outputs; Resize-18 added attributes that are off by default. So the
    opset-13 converters serve, for nodes that leave the new attributes at their defaults."""
    from onnx2torch.node_converters.registry import OperationDescription, _CONVERTER_REGISTRY, add_converter

    def same_as_13(op: str, new_attributes: tuple[str, ...]):
        older = _CONVERTER_REGISTRY[OperationDescription(domain="", operation_type=op, version=13)]

        def convert(node, graph):
            used = [a for a in new_attributes if node.attributes.get(a, "stretch") not in (0, "stretch")]
            if used:
                raise NotImplementedError(f"Converter is not implemented (operation_type='{op}', version=18 with {used})")
            return older(node, graph)

        return convert

    for op, new_attributes, versions in (("Split", (), (18,)),
                                         ("Resize", ("antialias", "axes", "keep_aspect_ratio_policy"), (18, 19))):
        for version in versions:
            if OperationDescription(domain="", operation_type=op, version=version) not in _CONVERTER_REGISTRY:
                add_converter(operation_type=op, version=version)(same_as_13(op, new_attributes))
