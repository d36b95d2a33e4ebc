"""What every exporter is: a small class behind the ``Exporter`` protocol.

``exporters/<name>.py`` holds ``<Name>Exporter``. It turns one kind of source into an ONNX
file plus what validation needs: the signature and a runner of the source framework that
produces the reference outputs. Everything after that (simplify, validate, bundle) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.core.specs import DimSizes, TensorSpec
from edge.build.validate import Runner


@dataclass(frozen=True)
class ExportRequest:
    workdir: Path  # a private scratch folder; the ONNX file goes here
    opset: int
    inputs: list[TensorSpec] = field(default_factory=list)  # from the command line; may be empty
    output_names: list[str] = field(default_factory=list)
    dims: DimSizes = field(default_factory=DimSizes)
    task: str | None = None


@dataclass
class Exported:
    onnx_path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    reference: Runner  # runs the source model in its own framework
    reference_name: str  # e.g. "torch 2.13.0"
    source: dict[str, Any]  # kind, ref, sha256, and what else identifies it
    tools: dict[str, str] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    # The torch module (positional inputs in ``inputs`` order, a tuple of outputs) for formats
    # converted from torch (TFLite); None for an ONNX source.
    module: Any = None


class Exporter(Protocol):
    name: str

    def accepts(self, source: str) -> bool:
        """Cheap check on the source string alone (no heavy imports)."""

    def export(self, source: str, request: ExportRequest) -> Exported: ...
