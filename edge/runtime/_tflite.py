"""What LiteRT and tflite-runtime share: the same Interpreter API under two import names.

An Interpreter is not thread-safe: ``run`` holds a lock, so a shared model serialises calls.
Inputs whose shape differs from the allocated one are resized (dynamic batch).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edge.errors import InvalidModelError, UsageError
from edge.specs import TensorSpec


class InterpreterSession:
    def __init__(self, interpreter, runtime: str) -> None:
        self._it = interpreter
        self._lock = threading.Lock()
        self._runtime = runtime
        self._in = interpreter.get_input_details()
        self._out = interpreter.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            try:
                resized = False
                for d in self._in:
                    shape = feeds[d["name"]].shape
                    if tuple(d["shape"]) != shape:
                        self._it.resize_tensor_input(d["index"], list(shape))
                        resized = True
                if resized:
                    self._it.allocate_tensors()
                    self._in = self._it.get_input_details()
                    self._out = self._it.get_output_details()
                for d in self._in:
                    self._it.set_tensor(d["index"], feeds[d["name"]])
                self._it.invoke()
                return {d["name"]: self._it.get_tensor(d["index"]).copy() for d in self._out}
            except (ValueError, RuntimeError) as exc:
                raise UsageError(f"{self._runtime} refused the inputs: {str(exc).strip().splitlines()[0]}") from exc


def open_interpreter(interpreter_cls, path: Path, threads: int, runtime: str) -> InterpreterSession:
    try:
        interpreter = interpreter_cls(model_path=str(path), num_threads=threads or None)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InvalidModelError(f"{runtime} cannot load {Path(path).name}: {str(exc).strip().splitlines()[0]}") from exc
    return InterpreterSession(interpreter, runtime)


def _spec(detail: dict) -> TensorSpec:
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    shape = tuple(int(d) if d > 0 else ("batch" if i == 0 else f"{detail['name']}_dim{i}") for i, d in enumerate(dims))
    return TensorSpec(detail["name"], np.dtype(detail["dtype"]).name, shape)
