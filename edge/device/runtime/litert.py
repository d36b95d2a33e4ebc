"""The LiteRT backend (``ai-edge-litert``, tflite-runtime's successor), XNNPACK by default."""

from __future__ import annotations

from pathlib import Path

from edge.core.catalog import Knobs
from edge.device.runtime._tflite import InterpreterSession, open_interpreter


class LitertBackend:
    name = "litert"

    def version(self) -> str:
        from importlib.metadata import version

        return version("ai-edge-litert")

    def open(self, path: Path, threads: int = 0, optimization: str = "all", knobs: Knobs | None = None) -> InterpreterSession:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        knobs = knobs or Knobs()
        extra = {} if knobs.xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        if knobs.xnnpack_latest:
            extra["experimental_default_delegate_latest_features"] = True
        return open_interpreter(Interpreter, path, threads, "LiteRT", **extra)
