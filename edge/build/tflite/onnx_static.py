"""onnx2torch modules that read a constant tensor's values at run time (``.tolist()``, ``.item()``,
a Python ``set`` of a tensor), made static where those tensors are constants. torch.export, and
so litert-torch, cannot trace through such reads: it stops with "data-dependent expression".
After ``fold_shapes`` most shape tensors are constants, so most of these modules qualify.
"""

from __future__ import annotations

from typing import Any

from edge.core.errors import require


def made_static(module: Any) -> Any:
    """``module`` (a torch.fx GraphModule from onnx2torch) with every such module replaced."""
    for step in (_static_resize, _static_reshape, _static_slice_split, _static_pad, _static_axes, _static_gather):
        module = step(module)
    return module


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

    for node in _modules_of(module, (OnnxResize, OnnxResizeV10)):
        sub = module.get_submodule(node.target)
        if isinstance(sub, OnnxResizeV10):
            inner, scales, sizes = sub._resize, _arg(node, 1, "scales"), None
        else:
            inner, scales, sizes = sub, _arg(node, 2, "scales"), _arg(node, 3, "sizes")
        scales, sizes = _constant(module, scales), _constant(module, sizes)
        if scales is None and sizes is None:
            continue  # computed at run time: leave it, litert-torch will say if it cannot follow
        factor = scales.tolist()[2:] if scales is not None and scales.numel() else None
        size = [int(v) for v in sizes.tolist()[2:]] if sizes is not None and sizes.numel() else None
        mode = _onnx_mode_to_torch_mode(inner.onnx_mode, 2)
        align = inner.align_corners if mode not in ("nearest", "area") else None
        _replace(module, node, StaticResize(mode, align, factor, size))
    return _recompiled(module)


def _static_reshape(module: Any) -> Any:
    """``Reshape`` to a constant shape becomes ``torch.reshape`` to that shape: onnx2torch's
    module inspects the shape tensor's values at run time (``torch.any(shape == 0)``)."""
    torch = require("torch")
    from onnx2torch.node_converters.reshape import OnnxReshape

    class StaticReshape(torch.nn.Module):
        def __init__(self, shape: list[int]) -> None:
            super().__init__()
            self.shape = shape

        def forward(self, x):
            # ONNX: 0 copies the input's size at that axis
            return torch.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])

    for node in _modules_of(module, OnnxReshape):
        shape = _constant(module, _arg(node, 1, "shape"))
        if shape is not None:
            _replace(module, node, StaticReshape([int(v) for v in shape.tolist()]))
    return _recompiled(module)


def _static_slice_split(module: Any) -> Any:
    """``Slice`` and ``Split`` with constant starts/ends/axes/steps or split sizes become their
    fixed forms: onnx2torch's modules read those tensors with ``.numpy()`` / ``.tolist()``."""
    from onnx2torch.node_converters.slice import OnnxSlice
    from onnx2torch.node_converters.split import OnnxSplit, OnnxSplit13

    for node in _modules_of(module, (OnnxSlice, OnnxSplit13)):
        sub = module.get_submodule(node.target)
        if isinstance(sub, OnnxSlice):
            given = {**dict(zip(("starts", "ends", "axes", "steps"), node.args[1:])), **node.kwargs}
            found = {k: _constant(module, v) for k, v in given.items() if v is not None}
            if len(found) < len(given) or not {"starts", "ends"} <= found.keys():
                continue
            values = {k: [int(x) for x in t.reshape(-1).tolist()] for k, t in found.items()}
            _replace(module, node, _StaticSlice(values["starts"], values["ends"], values.get("axes"), values.get("steps")))
        else:
            split = _constant(module, _arg(node, 1, "split"))
            if split is not None:
                _replace(module, node, OnnxSplit(sub.num_splits, sub.axis, [int(v) for v in split.tolist()]))
    return _recompiled(module)


def _static_pad(module: Any) -> Any:
    """``Pad`` with constant pads (opset 11+ takes them as an input) becomes ``F.pad`` with a fixed
    list: onnx2torch's module turns the pads tensor into a Python set, which torch.export cannot."""
    torch = require("torch")
    from onnx2torch.node_converters.pad import OnnxPadDynamic, _onnx_padding_to_torch

    class StaticPad(torch.nn.Module):
        def __init__(self, pads: list[int], mode: str, value: float) -> None:
            super().__init__()
            torch_pads = _onnx_padding_to_torch(pads)  # last axis first
            while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:  # untouched outer axes: torch's reflect
                torch_pads = torch_pads[:-2]                              # and replicate pad inner axes only
            self.pads, self.mode, self.value = torch_pads, mode, value

        def forward(self, x):
            if self.mode == "constant":
                return torch.nn.functional.pad(x, self.pads, mode="constant", value=self.value)
            return torch.nn.functional.pad(x, self.pads, mode=self.mode)

    for node in _modules_of(module, OnnxPadDynamic):
        pads, given = _constant(module, _arg(node, 1, "pads")), _arg(node, 2, "constant_value")
        value = _constant(module, given)
        if pads is None or (given is not None and value is None):
            continue
        fill = float(value.reshape(-1)[0]) if value is not None and value.numel() else 0.0
        _replace(module, node, StaticPad([int(v) for v in pads.tolist()], module.get_submodule(node.target).mode, fill))
    return _recompiled(module)


def _StaticSlice(starts: list[int], ends: list[int], axes: list[int] | None, steps: list[int] | None) -> Any:
    torch = require("torch")
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)

    class StaticSlice(torch.nn.Module):
        def forward(self, x):
            index, flips = [slice(None)] * x.dim(), []
            for start, end, axis, step in zip(starts, ends, axes, steps):
                axis = axis % x.dim()
                if step < 0:  # as onnx2torch does: flip, then slice forwards
                    flips.append(axis)
                    start, end, step = -start - 1, -end - 1, -step
                index[axis] = slice(start, end, step)
            if flips:
                x = torch.flip(x, dims=flips)
            return x[tuple(index)]

    return StaticSlice()


def _static_axes(module: Any) -> Any:
    """``Squeeze`` and ``Unsqueeze`` with constant axes (opset 13+ takes them as an input)."""
    from onnx2torch.node_converters.squeeze import OnnxSqueezeDynamicAxes, OnnxSqueezeStaticAxes
    from onnx2torch.node_converters.unsqueeze import OnnxUnsqueezeDynamicAxes, OnnxUnsqueezeStaticAxes

    for node in _modules_of(module, (OnnxSqueezeDynamicAxes, OnnxUnsqueezeDynamicAxes)):
        given = _arg(node, 1, "axes")
        axes = _constant(module, given)
        if given is not None and axes is None:
            continue
        listed = [int(v) for v in axes.reshape(-1).tolist()] if axes is not None else None
        squeeze = isinstance(module.get_submodule(node.target), OnnxSqueezeDynamicAxes)
        _replace(module, node, OnnxSqueezeStaticAxes(listed or None) if squeeze else OnnxUnsqueezeStaticAxes(listed))
    return _recompiled(module)


def _static_gather(module: Any) -> Any:
    """``Gather`` at a constant scalar index becomes ``select``: onnx2torch indexes with the 0-d
    tensor, which torch.export reads as a Python number (``.item()``)."""
    torch = require("torch")
    from onnx2torch.node_converters.gather import OnnxGather

    class Select(torch.nn.Module):
        def __init__(self, axis: int, index: int) -> None:
            super().__init__()
            self.axis, self.index = axis, index

        def forward(self, x):
            return torch.select(x, self.axis, self.index)

    for node in _modules_of(module, OnnxGather):
        index = _constant(module, _arg(node, 1, "indices"))
        if index is not None and index.dim() == 0:
            _replace(module, node, Select(module.get_submodule(node.target)._axis, int(index)))
    return _recompiled(module)


def _constant(module: Any, node: Any):
    """The tensor behind an fx node that reads a module attribute, else None."""
    if node is None or getattr(node, "op", None) != "get_attr":
        return None
    value = module
    for part in node.target.split("."):
        value = getattr(value, part)
    return value.detach()


def _arg(node: Any, index: int, name: str) -> Any:
    """An fx node's input at ``index``, or by ``name``: onnx2torch passes the inputs after a
    skipped one (Resize's ``roi=''``) as keywords."""
    return node.args[index] if len(node.args) > index else node.kwargs.get(name)


def _modules_of(module: Any, kinds) -> list[Any]:
    return [n for n in list(module.graph.nodes) if n.op == "call_module" and isinstance(module.get_submodule(n.target), kinds)]


def _replace(module: Any, node: Any, new: Any) -> None:
    module.add_submodule(node.target, new)
    node.args, node.kwargs = (node.args[0],), {}


def _recompiled(module: Any) -> Any:
    module.graph.eliminate_dead_code()
    module.recompile()
    return module
