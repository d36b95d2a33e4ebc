"""The LiteRT backend (``ai-edge-litert``, tflite-runtime's successor), XNNPACK by default."""

from __future__ import annotations

from pathlib import Path

from edge.device.runtime._tflite import InterpreterSession, open_interpreter


class LitertBackend:
    name = "litert"

    def version(self) -> str:
        from importlib.metadata import version

        return version("ai-edge-litert")

    def open(self, path: Path, threads: int = 0, optimization: str = "all") -> InterpreterSession:
        from ai_edge_litert.interpreter import Interpreter

        return open_interpreter(Interpreter, path, threads, "LiteRT")
