"""The tflite-runtime backend: the legacy interpreter, for devices that only have it.

It is frozen at 2.14 (no newer op versions, numpy<2, no aarch64 wheel for Python >= 3.11):
edge checks a bundle's recorded op versions against what it can run before using it.
"""

from __future__ import annotations

from pathlib import Path

from edge.core.catalog import Knobs
from edge.core.errors import MissingDependencyError
from edge.device.runtime._tflite import InterpreterSession, open_interpreter


class TfliteRuntimeBackend:
    name = "tflite-runtime"

    def version(self) -> str:
        from importlib.metadata import version

        return version("tflite-runtime")

    def open(self, path: Path, threads: int = 0, optimization: str = "all", knobs: Knobs | None = None) -> InterpreterSession:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError as exc:  # it imports, then fails inside, under numpy 2
            raise MissingDependencyError(f"tflite-runtime does not load here: {exc}", hint="pip install 'numpy<2'") from exc
        knobs = knobs or Knobs()  # 2.14 has no latest-features flag: xnnpack_latest is LiteRT's only
        extra = {} if knobs.xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        return open_interpreter(Interpreter, path, threads, "tflite-runtime", **extra)
