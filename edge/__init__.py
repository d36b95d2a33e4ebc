"""edge: put small models on small devices.

The runtime API, for apps on the device::

    import edge

    model = edge.load("build/digits")          # picks the artifact for this device
    logits = model.run({"pixels": x})["logits"]

``import edge`` is light: numpy and this package, never torch or onnx; ``edge.load`` adds
only the runtime it picks. The command line is ``edge`` (``edge --help``).
"""

from edge.core.errors import (
    EdgeError,
    InputNotFoundError,
    InvalidModelError,
    MissingDependencyError,
    UsageError,
)
from edge.device.llm import LanguageModel
from edge.device.model import Choice, InputError, Model, load
from edge.core.specs import TensorSpec

__version__ = "0.1.0"
__all__ = [
    "load",
    "Model",
    "LanguageModel",
    "Choice",
    "TensorSpec",
    "EdgeError",
    "InputError",
    "InputNotFoundError",
    "InvalidModelError",
    "MissingDependencyError",
    "UsageError",
    "__version__",
]
