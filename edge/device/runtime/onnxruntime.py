"""The onnxruntime backend. Its errors are translated here, where it is called.

``InferenceSession.run`` is thread-safe, so one session serves concurrent callers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.core.errors import InvalidModelError, UsageError, first_line
from edge.core.specs import TensorSpec

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_NUMPY = {"float": "float32", "double": "float64", "string": "object"}  # ONNX element type -> numpy, where names differ


class OnnxruntimeSession:
    def __init__(self, session) -> None:
        self.raw = session  # the onnxruntime.InferenceSession underneath
        self._outputs = [o.name for o in session.get_outputs()]
        self.inputs = [_spec(v) for v in session.get_inputs()]
        self.outputs = [_spec(v) for v in session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.raw.run(self._outputs, feeds)
        except Exception as exc:  # onnxruntime raises InvalidArgument, Fail, RuntimeException...
            raise UsageError(f"onnxruntime refused the inputs: {first_line(exc)}") from exc
        return dict(zip(self._outputs, values))


class OnnxruntimeBackend:
    name = "onnxruntime"

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def open(self, path: Path, threads: int = 0, optimization: str = "all") -> OnnxruntimeSession:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[optimization])
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise InvalidModelError(f"onnxruntime cannot load {Path(path).name}: {first_line(exc)}") from exc
        return OnnxruntimeSession(session)


def _spec(value) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) else f"{value.name}_dim{i}")
                  for i, d in enumerate(value.shape))
    kind = value.type  # "tensor(float)", "seq(tensor(int64))", ...
    element = kind[len("tensor("):-1] if kind.startswith("tensor(") else kind
    return TensorSpec(value.name, _NUMPY.get(element, element), shape)

