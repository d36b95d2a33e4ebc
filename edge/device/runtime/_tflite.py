"""What LiteRT and tflite-runtime share: the same Interpreter API under two import names.

An Interpreter is not thread-safe: ``run`` holds a lock, so a shared model serialises calls.
Models with a signature (what litert-torch writes) are fed by the signature's names; others by
tensor name, and inputs whose shape differs from the allocated one are resized.

The session feeds the artifact what it stores: a full-int8 model's int8 inputs get float
values quantized with the tensor's scale and zero point (and its outputs come back
dequantized to float32), and int64 ids go to an int32 input when every value fits.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edge.core.errors import InputsRefusedError, InvalidModelError, first_line
from edge.core.specs import TensorSpec

_QUANTIZED = (np.int8, np.uint8, np.int16)


class InterpreterSession:
    def __init__(self, interpreter, runtime: str, options: dict | None = None) -> None:
        self._it = interpreter
        self.options = options or {}  # the Interpreter's keyword arguments beyond the model and threads
        self._lock = threading.Lock()
        self._runtime = runtime
        signatures = interpreter.get_signature_list()
        self._runner = interpreter.get_signature_runner(next(iter(signatures))) if signatures else None
        if self._runner is not None:
            self._in = [{**d, "name": n} for n, d in self._runner.get_input_details().items()]
            self._out = [{**d, "name": n} for n, d in self._runner.get_output_details().items()]
        else:
            self._in = interpreter.get_input_details()
            self._out = interpreter.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            try:
                stored = {d["name"]: _to_stored(d, feeds[d["name"]]) for d in self._in}
                raw = self._runner(**stored) if self._runner is not None else self._invoke(stored)
                return {d["name"]: _from_stored(d, raw[d["name"]]) for d in self._out}
            except (ValueError, RuntimeError) as exc:
                raise InputsRefusedError(f"{self._runtime} refused the inputs: {first_line(exc)}") from exc

    def _invoke(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


def _quantization(detail: dict) -> tuple[float, int] | None:
    scale, zero = detail.get("quantization", (0.0, 0))
    return (float(scale), int(zero)) if detail["dtype"] in _QUANTIZED and scale else None


def _to_stored(detail: dict, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    dtype = np.dtype(detail["dtype"])
    if value.dtype == dtype:
        return value
    quant = _quantization(detail)
    if quant is not None and value.dtype.kind == "f":
        scale, zero = quant
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale) + zero, info.min, info.max).astype(dtype)
    if value.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise ValueError(f"input '{detail['name']}' holds values outside {dtype} (the artifact stores {dtype})")
        return value.astype(dtype)
    return value


def _from_stored(detail: dict, value: np.ndarray) -> np.ndarray:
    quant = _quantization(detail)
    if quant is None:
        return value.copy()
    scale, zero = quant
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)


def open_interpreter(interpreter_cls, path: Path, threads: int, runtime: str, **extra) -> InterpreterSession:
    """``extra``: the Interpreter's own keyword arguments (op resolver, delegate features)."""
    try:
        interpreter = interpreter_cls(model_path=str(path), num_threads=threads or None, **extra)
    except (ValueError, RuntimeError) as exc:
        raise InvalidModelError(f"{runtime} cannot load {Path(path).name}: {first_line(exc)}") from exc
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        # An input of open length (an audio front end's samples) may not prepare at the file's
        # placeholder size: the first run resizes it to what it is fed, and allocates then.
        if not any(-1 in list(d.get("shape_signature", [])) for d in interpreter.get_input_details()):
            raise InvalidModelError(f"{runtime} cannot load {Path(path).name}: {first_line(exc)}") from exc
    return InterpreterSession(interpreter, runtime, {k: getattr(v, "name", v) for k, v in extra.items()})


def _spec(detail: dict) -> TensorSpec:
    """What the caller feeds: float32 for a quantized tensor (the session converts)."""
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    shape = tuple(int(d) if d > 0 else ("batch" if i == 0 else f"{detail['name']}_dim{i}") for i, d in enumerate(dims))
    dtype = "float32" if _quantization(detail) else np.dtype(detail["dtype"]).name
    return TensorSpec(detail["name"], dtype, shape)
