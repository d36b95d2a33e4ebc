"""Reading, checking, cleaning and writing ONNX files (needs the ``export`` extra).

onnx's own errors are translated here into ``InvalidModelError`` with the cause named:
a truncated protobuf, a missing external-data file, a graph the checker rejects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge.core.errors import InputNotFoundError, InvalidModelError, require, first_line
from edge.core.specs import TensorSpec

log = logging.getLogger(__name__)

# ONNX TensorProto element types -> numpy dtype names (the ones a small model uses).
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}
_TWO_GB = 2**31 - 1


def load_checked(path: Path) -> Any:
    """The model at ``path`` with its external data, checked; clear errors otherwise."""
    onnx = require("onnx")
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise InputNotFoundError(f"no such file: {path}", hint="check the path")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise InvalidModelError(f"{path.name} is not a readable ONNX model (truncated or corrupt): {exc}") from exc
    if not model.graph.node and not model.graph.output:
        raise InvalidModelError(f"{path.name} is not a readable ONNX model: it holds no graph", hint="re-export or re-download it")
    for name in sorted(_external_files(model)):
        if not (path.parent / name).is_file():
            raise InvalidModelError(
                f"{path.name} keeps its weights in '{name}', which is not beside it",
                hint=f"put {name} in {path.parent}",
            )
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(str(path))
    except Exception as exc:  # the checker raises ValidationError and friends
        raise InvalidModelError(f"{path.name} fails the ONNX checker: {first_line(exc)}") from exc
    return model


def _external_files(model: Any) -> set[str]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    files = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            files.update(e.value for e in tensor.external_data if e.key == "location")
    return files


def io_specs(model: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    initializers = {t.name for t in model.graph.initializer}

    def spec(value: Any, i: int) -> TensorSpec:
        t = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0
            else (d.dim_param if d.dim_param not in ("", "?") else f"{value.name}_dim{k}")
            for k, d in enumerate(t.shape.dim)
        )
        return TensorSpec(value.name, _DTYPES.get(t.elem_type, f"onnx:{t.elem_type}"), dims)

    inputs = [spec(v, i) for i, v in enumerate(model.graph.input) if v.name not in initializers]
    outputs = [spec(v, i) for i, v in enumerate(model.graph.output)]
    return inputs, outputs


def opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def node_count(model: Any) -> int:
    return len(model.graph.node)


def simplify(model: Any) -> Any:
    """onnxslim's simplified copy of ``model`` (constant folding, dead-node removal, fusions)."""
    onnxslim = require("onnxslim")
    return onnxslim.slim(model)


def rename_dims(model: Any, names: dict[str, str]) -> None:
    """Rename symbolic dims (``s0`` -> ``batch``) on graph inputs, outputs and value infos."""
    values = list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
    for value in values:
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]


def save(model: Any, path: Path) -> None:
    """One self-contained file when it fits (< 2 GB), else weights beside it in ``<name>.data``."""
    onnx = require("onnx")
    if model.ByteSize() < _TWO_GB:
        onnx.save(model, str(path))
    else:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")
