"""edge: put small models on small devices.

``import edge`` is light: it pulls numpy at most, never torch or onnx. The CLI is ``edge``;
see ``edge --help``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
