"""ONNX -> torch module through onnx2torch, so an existing ONNX file can become TFLite with
litert-torch like any PyTorch model (no TensorFlow, no onnx2tf environment; see
docs/tflite.md). Three things onnx2torch's output needs first, each found on a real model
(PP-OCR's text detector):

- onnx2torch imports torchvision for its NMS and RoIAlign converters, and PyPI's torchvision
  is a CUDA build that cannot load beside the CPU torch: a stand-in module is used when the
  real one does not import (a model with those ops then fails, naming them).
- weights held in ``Constant`` nodes (Paddle's exporter) become initializers, which is where
  onnx2torch's Conv converter looks for them.
- ``Resize`` with constant scales or sizes becomes a static ``F.interpolate``: onnx2torch's
  module calls ``.tolist()`` on them at run time, which torch.export cannot trace.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from edge.core.errors import MissingDependencyError, UnsupportedOpError, require, first_line


def to_torch(path: Path) -> Any:
    """The ONNX file at ``path`` as a torch.fx GraphModule taking its inputs positionally."""
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
    model = _constants_to_initializers(onnx.load(str(path)))
    try:
        module = onnx2torch.convert(model)
    except NotImplementedError as exc:  # onnx2torch: "Converter is not implemented (OperationDescription(...))"
        raise UnsupportedOpError(f"onnx2torch cannot convert {_op_of(str(exc))} to torch, so no TFLite artifact",
                                 hint="use the ONNX artifact instead (--format onnx)") from exc
    with torch.no_grad():
        return _static_resize(module.eval())


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


def _static_resize(module: Any) -> Any:
    torch = require("torch")
    from onnx2torch.node_converters.resize import OnnxResize, OnnxResizeV10, _onnx_mode_to_torch_mode

    class StaticResize(torch.nn.Module):
        def __init__(self, mode: str, align_corners: bool | None, scales, sizes) -> None:
            super().__init__()
            self.mode, self.align_corners, self.scales, self.sizes = mode, align_corners, scales, sizes

        def forward(self, x):
            return torch.nn.functional.interpolate(x, size=self.sizes, scale_factor=self.scales, mode=self.mode,
                                                   align_corners=self.align_corners)

    for node in list(module.graph.nodes):
        if node.op != "call_module":
            continue
        sub = module.get_submodule(node.target)
        if isinstance(sub, OnnxResizeV10):
            inner, scales, sizes = sub._resize, node.args[1], None
        elif isinstance(sub, OnnxResize):
            args = list(node.args) + [None] * 4
            inner, scales, sizes = sub, args[2], args[3]
        else:
            continue
        scales, sizes = _constant(module, scales), _constant(module, sizes)
        if scales is None and sizes is None:
            continue  # computed at run time: leave it, litert-torch will say if it cannot follow
        factor = scales.tolist()[2:] if scales is not None and scales.numel() else None
        size = [int(v) for v in sizes.tolist()[2:]] if sizes is not None and sizes.numel() else None
        mode = _onnx_mode_to_torch_mode(inner.onnx_mode, 2)
        align = inner.align_corners if mode not in ("nearest", "area") else None
        module.add_submodule(node.target, StaticResize(mode, align, factor, size))
        node.args, node.kwargs = (node.args[0],), {}
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


def _constant(module: Any, node: Any):
    """The tensor behind an fx node that reads a module attribute, else None."""
    if node is None or getattr(node, "op", None) != "get_attr":
        return None
    value = module
    for part in node.target.split("."):
        value = getattr(value, part)
    return value.detach()
