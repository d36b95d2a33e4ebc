"""The onnxruntime backend. Its errors are translated here, where it is called.

``InferenceSession.run`` is thread-safe, so one session serves concurrent callers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.core.catalog import Knobs
from edge.core.errors import InputsRefusedError, InvalidModelError, first_line
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
            values = self.raw.run(self._outputs, feeds, _QUIET())
        except Exception as exc:  # onnxruntime raises InvalidArgument, Fail, RuntimeException...
            raise InputsRefusedError(f"onnxruntime refused the inputs: {_reason(str(exc))}") from exc
        return dict(zip(self._outputs, values))


class OnnxruntimeBackend:
    name = "onnxruntime"

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def open(self, path: Path, threads: int = 0, optimization: str = "all", knobs: Knobs | None = None) -> OnnxruntimeSession:
        import onnxruntime as ort

        knobs = knobs or Knobs()
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[optimization])
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = knobs.arena
        if not knobs.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                           disabled_optimizers=list(knobs.disabled_optimizers) or None)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise InvalidModelError(f"onnxruntime cannot load {Path(path).name}: {first_line(exc)}") from exc
        return OnnxruntimeSession(session)


def _QUIET():
    """Run options that keep onnxruntime from also logging a refused run on stderr (level 3
    still lets a node inside an ``If`` log its error: only 4, fatal, keeps it quiet)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4
    return options


def _reason(text: str) -> str:
    """onnxruntime's message, down to the innermost node that failed and what it said."""
    import re

    failed = re.findall(r"running (\w+) node\. Name:'([^']*)' Status Message: ", text)
    if not failed:
        return first_line(Exception(text))
    op, name = failed[-1]
    said = text.rsplit("Status Message: ", 1)[1]
    return first_line(Exception(f"node '{name}' ({op}): {said}"))


def _spec(value) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) else f"{value.name}_dim{i}")
                  for i, d in enumerate(value.shape))
    kind = value.type  # "tensor(float)", "seq(tensor(int64))", ...
    element = kind[len("tensor("):-1] if kind.startswith("tensor(") else kind
    return TensorSpec(value.name, _NUMPY.get(element, element), shape)

