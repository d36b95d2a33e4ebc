"""Every error a user can cause, as one tree of types.

The library raises these and never prints or exits; the CLI (``edge.cli``) is the one
place that maps them to a message, a hint and an exit code::

    EdgeError                      exit 1   anything the user can fix that has no finer type
    ├── UsageError                 exit 2   malformed argument: bad spec, bad shape syntax
    │   └── InputsRefusedError     exit 2   a runtime refused the inputs (shape, dtype, a value
    │                                       the model checks, such as a sample rate)
    ├── InputNotFoundError         exit 3   a file or folder that is not there
    ├── InvalidModelError          exit 4   truncated/corrupt model, missing external data,
    │                                       a folder that is not a transformers model
    ├── ConfigError                exit 5   a target/profile file that breaks the schema
    │   └── UnknownTargetError     exit 5   a target or profile name that does not exist
    ├── ExportError                exit 6   the exporter failed (a user factory raised, ...)
    │   └── UnsupportedOpError     exit 6   an op or module the exporter cannot convert
    ├── ValidationError            exit 7   an artifact's outputs are beyond the tolerance
    ├── OutputExistsError          exit 8   the output folder exists and --force was not given
    ├── MissingDependencyError     exit 9   an optional extra is not installed
    ├── DeviceError                exit 10  a remote device: unreachable, refused its host key,
    │                                       dropped the connection, timed out, or failed there
    └── MeterError                 exit 1   an energy meter stopped measuring mid-run (the
                                            profiler records energy as unavailable instead)

Lower-level errors (onnx, onnxruntime, torch.onnx, subprocess) are translated into these
where they are called, with ``raise ... from exc`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations


# The name on PyPI (``edge-toolkit`` there is an unrelated package); the import name stays ``edge``.
DISTRIBUTION = "edge-deploy"

class EdgeError(Exception):
    """Base of every error ``edge`` raises on purpose; ``hint`` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(EdgeError):
    """A malformed argument or input: a bad spec, a wrong shape or dtype."""

    exit_code = 2


class InputsRefusedError(UsageError):
    """A runtime refused the inputs it was given: wrong shape or dtype, or a value the model
    itself checks (a voice-activity detector takes a sample rate of 8000 or 16000 only)."""


class InputNotFoundError(EdgeError):
    """A file, folder or module that is not there."""

    exit_code = 3


class InvalidModelError(EdgeError):
    """A model or bundle that cannot be read or trusted (corrupt, changed, other architecture)."""

    exit_code = 4


class ConfigError(EdgeError):
    """A target or profile file that breaks the schema."""

    exit_code = 5


class UnknownTargetError(ConfigError):
    """A target or profile name that does not exist."""

    exit_code = 5


class ExportError(EdgeError):
    """The exporter failed (a factory raised, a converter broke)."""

    exit_code = 6


class UnsupportedOpError(ExportError):
    """An op or module the exporter cannot convert."""

    exit_code = 6


class ValidationError(EdgeError):
    """An artifact beyond its tolerance, or a variant beyond its accuracy budget."""

    exit_code = 7


class OutputExistsError(EdgeError):
    """The output folder exists and --force was not given."""

    exit_code = 8


class MissingDependencyError(EdgeError):
    """An optional package is missing; the hint is the pip line."""

    exit_code = 9


def require(module: str, extra: str = "export", package: str | None = None):
    """Import an optional heavy dependency, or say exactly how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split(".")[0]
        raise MissingDependencyError(
            f"this needs the Python package '{name}', which is not installed",
            hint=f"pip install '{DISTRIBUTION}[{extra}]'",
        ) from exc


class DeviceError(EdgeError):
    """A remote device that could not be reached, was not trusted, dropped the connection or timed out."""

    exit_code = 10


class MeterError(EdgeError):
    """A meter that was available stopped measuring during the run (sensor gone, battery plugged in)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name when it has none),
    for one-line errors made from a library's multi-line ones.

    >>> first_line(RuntimeError("\\n  bad shape\\n  at node 3"))
    'bad shape'
    >>> first_line(ValueError(""))
    'ValueError'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


def last_line(text: str, limit: int = 300, default: str = "no message") -> str:
    """The last non-empty line of a tool's output (where ssh and CLIs put the reason they stopped).

    >>> last_line("warming up\nerror: no such file\n")
    'error: no such file'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("@@@")]
    return lines[-1][:limit] if lines else default
