"""Runtime backends: one module per runtime, each behind the ``Backend`` protocol.

``edge/device/runtime/<name>.py`` holds ``<Name>Backend`` (``tflite-runtime`` lives in
``tflite_runtime.py`` as ``TfliteRuntimeBackend``). Backends are imported lazily by name so
that a device only imports the runtime it uses. A backend object can also be passed to
``edge.load`` directly.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.core.catalog import RUNTIMES, Knobs
from edge.core.errors import MissingDependencyError, UsageError
from edge.core.specs import TensorSpec


class Runtime:
    """What the registry knows of a runtime without importing it."""

    def __init__(self, backend: str, module: str, pip: str, formats: tuple[str, ...]) -> None:
        self.backend, self.module, self.pip, self.formats = backend, module, pip, formats

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False


_ENTRIES = {
    "onnxruntime": Runtime("edge.device.runtime.onnxruntime:OnnxruntimeBackend", "onnxruntime", "pip install onnxruntime", ("onnx",)),
    "litert": Runtime("edge.device.runtime.litert:LitertBackend", "ai_edge_litert", "pip install ai-edge-litert", ("tflite",)),
    "tflite-runtime": Runtime("edge.device.runtime.tflite_runtime:TfliteRuntimeBackend", "tflite_runtime",
                              "pip install tflite-runtime 'numpy<2'", ("tflite",)),
}
# In the order and with the names of catalog.RUNTIMES, the one list of runtime names.
BACKENDS: dict[str, Runtime] = {name: _ENTRIES[name] for name in RUNTIMES}


class Session(Protocol):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def open(self, path: Path, threads: int = 0, optimization: str = "all", knobs: Knobs | None = None) -> Session: ...


def backend(name: str) -> Backend:
    """The backend registered as ``name``, imported now.

    >>> backend("onnxruntime").name
    'onnxruntime'
    """
    if name not in BACKENDS:
        raise UsageError(f"unknown runtime '{name}'", hint=f"known: {', '.join(BACKENDS)}")
    entry = BACKENDS[name]
    if not entry.installed():
        raise MissingDependencyError(f"runtime '{name}' is not installed", hint=entry.pip)
    module_name, cls_name = entry.backend.split(":")
    return getattr(importlib.import_module(module_name), cls_name)()


def for_format(fmt: str) -> list[str]:
    return [name for name, entry in BACKENDS.items() if fmt in entry.formats]
