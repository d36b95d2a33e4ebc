"""Exporters, one module each; looked up by source and imported only when used.

``edge.exporters.REGISTRY`` maps a name to ``"module:Class"``; ``for_source`` returns the
first exporter whose ``accepts`` takes the source string.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import MappingProxyType

from edge.core.errors import InputNotFoundError, UsageError

REGISTRY = MappingProxyType(
    {
        "onnx_file": "edge.exporters.onnx_file:OnnxFileExporter",
        "transformers": "edge.exporters.transformers:TransformersExporter",
        "pytorch": "edge.exporters.pytorch:PytorchExporter",
    }
)


def get(name: str):
    module_name, cls_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)()


def for_source(source: str):
    for name in REGISTRY:
        exporter = get(name)
        if exporter.accepts(source):
            return exporter
    if not Path(source).exists():
        raise InputNotFoundError(f"no such file or folder: {source}", hint="check the path")
    raise UsageError(
        f"cannot tell what kind of model '{source}' is",
        hint="give a .onnx file, a transformers model folder, or a PyTorch factory as path/to/file.py:factory or package.module:factory",
    )
