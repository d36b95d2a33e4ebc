"""The onnxruntime backend. Its errors are translated here, where it is called."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import InvalidModelError, UsageError

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


class OnnxruntimeSession:
    def __init__(self, session) -> None:
        self._session = session
        self._outputs = [o.name for o in session.get_outputs()]

    @property
    def raw(self):
        """The onnxruntime.InferenceSession underneath."""
        return self._session

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        try:
            values = self._session.run(self._outputs, feeds)
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ValueError) as exc:
            raise UsageError(f"onnxruntime refused the inputs: {_first_line(exc)}") from exc
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
            raise InvalidModelError(f"onnxruntime cannot load {path.name}: {_first_line(exc)}") from exc
        return OnnxruntimeSession(session)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
