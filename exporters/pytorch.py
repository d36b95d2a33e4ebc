"""A PyTorch module from a factory: ``path/to/file.py:factory`` or ``package.module:factory``.

The factory takes no arguments and returns the module, or ``(module, inputs)`` or
``(module, inputs, output_names)`` where inputs are spec strings
(``"pixels:float32[batch,1,8,8]:0..1"``) or dicts; ``--input`` on the command line wins.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, Callable

from edge.core.bundle import sha256_file
from edge.core.errors import ExportError, InputNotFoundError, UsageError, require
from edge.exporters import _torch
from edge.exporters.base import Exported, ExportRequest
from edge.core.specs import parse_spec

_FACTORY = re.compile(r"^(?P<where>[^:]+):(?P<factory>[A-Za-z_]\w*)$")


class PytorchExporter:
    name = "pytorch"

    def accepts(self, source: str) -> bool:
        return ":" in source and not source.endswith(".onnx")

    def export(self, source: str, request: ExportRequest) -> Exported:
        torch = require("torch")
        factory, origin = load_factory(source)
        module, specs, outputs = _call(factory, source)
        if request.inputs:
            specs = request.inputs
        if not specs:
            raise UsageError(
                f"no input signature for '{source}'",
                hint="give --input name:dtype[dims] (e.g. x:float32[batch,3,32,32]) or return (module, inputs) from the factory",
            )
        module.eval()
        names = _torch.output_names_of(module, specs, request.dims, request.output_names or outputs)
        path = request.workdir / "model.onnx"
        _torch.export_module(module, specs, names, request.dims, path, request.opset)
        return Exported(
            onnx_path=path,
            inputs=specs,
            outputs=[],  # read back from the ONNX graph by the pipeline
            reference=_torch.reference_runner(module, specs, names),
            reference_name=f"torch {torch.__version__}",
            source={"kind": "pytorch", "ref": source, "sha256": sha256_file(origin) if origin.is_file() else None, "hashed": str(origin)},
            tools={"torch": torch.__version__},
            module=_torch.positional(module, names),
            build={"exporter": "torch.onnx.export(dynamo=True)"},
        )


def load_factory(source: str) -> tuple[Callable[[], Any], Path]:
    """The factory callable a spec names, and the file that defines it."""
    m = _FACTORY.match(source)
    if not m:
        raise UsageError(
            f"malformed model spec '{source}'",
            hint="write path/to/file.py:factory or package.module:factory (the factory's name after one colon)",
        )
    where, name = m["where"], m["factory"]
    if where.endswith(".py") or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise InputNotFoundError(f"no such file: {where}", hint="check the path before the colon")
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise InputNotFoundError(f"cannot import module '{where}': {exc}", hint="is it installed, or on PYTHONPATH?") from exc
        path = Path(getattr(module, "__file__", "") or where)
    factory = getattr(module, name, None)
    if not callable(factory):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise UsageError(f"'{where}' has no callable '{name}'", hint=f"callables there: {', '.join(found[:12]) or 'none'}")
    return factory, path


def _import_file(path: Path) -> Any:
    name = f"edge_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ExportError(f"importing {path} raised {type(exc).__name__}: {exc}", hint="run the file with python to see the traceback") from exc
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _call(factory: Callable[[], Any], source: str) -> tuple[Any, list, list[str]]:
    torch = require("torch")
    try:
        result = factory()
    except Exception as exc:
        raise ExportError(
            f"the factory '{source}' raised {type(exc).__name__}: {exc}",
            hint="run it in Python to see the traceback, or pass --debug",
        ) from exc
    parts = list(result) if isinstance(result, tuple) else [result]
    module, specs, outputs = (parts + [[], []])[:3]
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"the factory '{source}' returned {type(module).__name__}, not a torch.nn.Module")
    return module, [parse_spec(s) for s in specs or []], list(outputs or [])
