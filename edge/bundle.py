"""The deployment bundle: a folder of artifacts and a ``manifest.json`` that says what they are.

A bundle is written whole or not at all: everything goes into a hidden staging folder
beside the destination, which is renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edge import schema
from edge.errors import InputNotFoundError, InvalidModelError, OutputExistsError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class Artifact:
    name: str  # the profile variant it was built from, e.g. "fp32"
    format: str  # "onnx" or "tflite"
    path: str  # relative to the bundle
    size: int
    sha256: str
    precision: str
    opset: int | None = None
    build: dict[str, Any] = field(default_factory=dict)  # how it was made (simplify, quantize, ...)
    validation: dict[str, Any] = field(default_factory=dict)  # the fp32 graph against the source
    gate: dict[str, Any] | None = None  # a quantized artifact against the fp32 one
    latency: dict[str, Any] | None = None  # measured at export time on a machine of the target's class
    layouts: dict[str, str] = field(default_factory=dict)  # input -> layout the artifact wants, where it differs
    ops: list[list[Any]] = field(default_factory=list)  # TFLite: [builtin op, version], for compatibility checks
    # The artifact's own signature where it differs from the manifest's: fixed shapes (TFLite),
    # its layout (NHWC), the dtype it stores (int32 ids, int8 I/O). Empty: the manifest's.
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Manifest:
    schema_version: int
    created: str
    source: dict[str, Any]
    target: dict[str, Any]
    profile: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    artifacts: list[Artifact]
    tools: dict[str, str]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # variants not built, and why
    notes: list[str] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None  # the data the accuracy gate used
    preferred: list[str] = field(default_factory=list)  # artifact names, best first
    preprocessing: dict[str, Any] = field(default_factory=dict)  # how raw text or images become inputs

    def to_json(self) -> dict[str, Any]:
        return schema.to_dict(self)


def hash_into(digest: Any, path: Path) -> None:
    """Feed a file to a hashlib digest in 1 MiB chunks (artifacts run to hundreds of MB)."""
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    hash_into(digest, path)
    return digest.hexdigest()


def read_manifest(bundle: Path) -> Manifest:
    """The manifest of ``bundle``, checked against the schema."""
    path = Path(bundle) / MANIFEST
    if not Path(bundle).exists():
        raise InputNotFoundError(f"no such bundle: {bundle}")
    if not path.is_file():
        raise InvalidModelError(f"{bundle} is not a bundle: it has no {MANIFEST}", hint="make one with 'edge export'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidModelError(f"{path} is not valid JSON: {exc}") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise InvalidModelError(
            f"{path}: manifest schema version {version!r}, this edge reads {SCHEMA_VERSION}",
            hint="re-export the bundle with this version of edge, or upgrade edge",
        )
    try:
        return schema.load(Manifest, data, str(path))
    except Exception as exc:
        raise InvalidModelError(str(exc), hint=getattr(exc, "hint", None)) from exc


@contextlib.contextmanager
def staged(destination: Path, force: bool) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``destination`` atomically.

    Any exception (or Ctrl-C) removes the staging folder and leaves ``destination`` as it was.
    """
    import shutil
    import tempfile

    destination = Path(destination)
    if destination.exists() and not force:
        raise OutputExistsError(f"{destination} already exists", hint="choose another -o or pass --force to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    try:
        yield stage
        if destination.exists():
            old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
            os.replace(destination, old)
            os.replace(stage, destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, destination)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.to_json(), indent=2, sort_keys=False, allow_nan=False)
    (Path(folder) / MANIFEST).write_text(text + "\n", encoding="utf-8")
