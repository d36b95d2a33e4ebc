"""torch.nn.Module -> ONNX through ``torch.onnx.export(dynamo=True)``, shared by the PyTorch
and transformers exporters. torch's errors are translated here."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edge.build import onnxfile
from edge.core.errors import ExportError, UnsupportedOpError, require
from edge.core.specs import DimSizes, TensorSpec
from edge.build.validate import Outputs, Runner

log = logging.getLogger(__name__)


def flatten_outputs(value: Any) -> list[tuple[str | None, Any]]:
    """(name or None, tensor) for a tensor, a tuple/list, a dict or a transformers ModelOutput."""
    if hasattr(value, "detach"):
        return [(None, value)]
    if isinstance(value, dict) or hasattr(value, "to_tuple"):
        return [(k, v) for k, v in value.items() if v is not None]
    if isinstance(value, (list, tuple)):
        return [(None, v) for v in value]
    raise ExportError(f"the model returned {type(value).__name__}; edge exports tensors, tuples or dicts of tensors")


def reference_runner(module: Any, specs: list[TensorSpec], output_names: list[str]) -> Runner:
    torch = require("torch")

    def run(feeds: dict[str, np.ndarray]) -> Outputs:
        with torch.no_grad():
            result = module(*[torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in specs])
        values = [v for _, v in flatten_outputs(result)]
        return {name: v.detach().cpu().numpy() for name, v in zip(output_names, values)}

    return run


def positional(module: Any, output_names: list[str]) -> Any:
    """``module`` returning a flat tuple of its outputs (a converter wants tensors, not dicts)."""
    torch = require("torch")

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(self, *args):
            return tuple(v for _, v in flatten_outputs(self.model(*args)))[: len(output_names)]

    return Flat().eval()


def output_names_of(module: Any, specs: list[TensorSpec], dims: DimSizes, given: list[str]) -> list[str]:
    """Names for the outputs: the user's, else a dict's keys, else output / output_N."""
    if given:
        return list(given)
    torch = require("torch")
    example = [torch.from_numpy(a) for a in example_arrays(specs, dims)]
    with torch.no_grad():
        flat = flatten_outputs(module(*example))
    if len(flat) == 1:
        return [flat[0][0] or "output"]
    return [k or f"output_{i}" for i, (k, _) in enumerate(flat)]


def example_arrays(specs: list[TensorSpec], dims: DimSizes) -> list[np.ndarray]:
    from edge.core.specs import random_inputs

    # Sample 1 uses batch 2: torch.export specialises a dynamic axis traced with size 1.
    arrays = random_inputs(specs, dims, sample=1, seed=1234)
    return [arrays[s.name] for s in specs]


def export_module(module: Any, specs: list[TensorSpec], output_names: list[str], dims: DimSizes, path: Path, opset: int) -> None:
    """Write ``module`` as ONNX to ``path`` with the dynamic axes the specs name."""
    torch = require("torch")
    require("onnxscript")
    symbols: dict[str, Any] = {}
    dynamic = tuple(
        {axis: symbols.setdefault(name, torch.export.Dim(_identifier(name))) for axis, name in s.dynamic_axes.items()} or None
        for s in specs
    )
    example = tuple(torch.from_numpy(a) for a in example_arrays(specs, dims))
    if _takes_varargs(module):
        dynamic = (dynamic,)  # torch.export sees forward(*args) as one argument holding a tuple
    chatter = io.StringIO()
    try:
        with quiet(chatter):
            program = torch.onnx.export(
                module, example, None,
                input_names=[s.name for s in specs], output_names=output_names,
                dynamic_shapes=dynamic if any(_flat(dynamic)) else None,
                opset_version=opset, dynamo=True, external_data=False, verbose=False,
            )
            model = program.model_proto
    except Exception as exc:
        raise _translate(exc, module, example) from exc
    finally:
        log.debug("torch.onnx output:\n%s", chatter.getvalue())
    # torch names dynamic axes after its symbols (s0, s1...); give them back the user's names.
    onnxfile.rename_dims(model, _symbol_names(model, specs))
    onnxfile.save(model, path)


def _flat(dynamic: tuple) -> list:
    return [d for item in dynamic for d in (_flat(item) if isinstance(item, tuple) else [item])]


def _takes_varargs(module: Any) -> bool:
    params = inspect.signature(module.forward).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident[0].isalpha() else f"d_{ident}"


def _symbol_names(model: Any, specs: list[TensorSpec]) -> dict[str, str]:
    names = {}
    by_name = {s.name: s for s in specs}
    for value in model.graph.input:
        spec = by_name.get(value.name)
        if spec is None:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param and axis in spec.dynamic_axes:
                names[dim.dim_param] = spec.dynamic_axes[axis]
    return names


@contextlib.contextmanager
def quiet(sink: io.StringIO):
    """torch.onnx prints progress and warnings; keep them for --debug instead of the terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_OP = re.compile(r"(?:OpOverload\(op='|target=torch\.ops\.)(?P<op>[\w.]+?)(?:'|\.default|\()")


def _translate(exc: Exception, module: Any, example: tuple) -> ExportError:
    text = str(exc)
    op = _OP.search(text)
    if op:
        name = op["op"]
        where = module_of(module, example, name)
        return UnsupportedOpError(
            f"torch.onnx cannot export op {name}{where}",
            hint="replace that op with supported ones, or export from a model without it",
        )
    summary = _summary_line(text)
    return ExportError(f"torch.onnx export failed: {summary}", hint="run with --debug for the full report")


def _summary_line(text: str) -> str:
    # torch's message carries an "## Exception summary" with the root cause first.
    m = re.search(r"## Exception summary\s+(.+)", text)
    line = m.group(1) if m else (text.strip().splitlines() or ["unknown error"])[0]
    return re.sub(r"\x1b\[[0-9;]*m", "", line).strip()[:300]


def module_of(module: Any, example: tuple, op: str) -> str:
    """' in module NAME (Type)' for the first node calling ``op``, found by re-tracing."""
    torch = require("torch")
    try:
        with quiet(io.StringIO()):
            program = torch.export.export(module, example, strict=False)
    except Exception:  # tracing itself failed: nothing more to name
        return ""
    for node in program.graph.nodes:
        if node.op == "call_function" and str(node.target).startswith(op):
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path, kind = list(stack.values())[-1]
                type_name = getattr(kind, "__name__", str(kind).rsplit(".", 1)[-1].strip("'>"))
                return f" in module '{path.removeprefix('L__self__').strip('._') or type_name}' ({type_name})"
    return ""
