"""Runtime backends: one module per runtime, each behind the ``Backend`` protocol.

``edge/runtime/<name>.py`` holds ``<Name>Backend``. Backends are imported lazily by name so
that a device only imports the runtime it uses.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import MissingDependencyError, UsageError

# name -> ("module:Class", the pip line that installs the runtime)
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("edge.runtime.onnxruntime:OnnxruntimeBackend", "pip install onnxruntime"),
}


class Session(Protocol):
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def open(self, path: Path, threads: int = 0, optimization: str = "all") -> Session: ...


def backend(name: str) -> Backend:
    """The backend registered as ``name``, imported now."""
    if name not in BACKENDS:
        raise UsageError(f"unknown runtime '{name}'", hint=f"known: {', '.join(BACKENDS)}")
    target, pip_line = BACKENDS[name]
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(f"runtime '{name}' is not installed", hint=pip_line) from exc
    return getattr(module, cls_name)()
