"""The deployment bundle: a folder of artifacts and a ``manifest.json`` that says what they are.

A bundle is written whole or not at all: everything goes into a hidden staging folder
beside the destination, which is renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from edge.core import schema
from edge.core.catalog import FORMATS, MAX_THREADS, OPTIMIZATION_LEVELS, PRECISIONS, RUNTIMES, Knobs, Profile, Target
from edge.core.errors import ConfigError, InputNotFoundError, InvalidModelError, OutputExistsError, first_line
from edge.core.specs import MAX_ELEMENTS, check_spec_json

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUFFIXES = {f".{fmt}": fmt for fmt in FORMATS}  # file suffix -> artifact format (a bare .onnx or .tflite file)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Artifact:
    name: str  # the profile variant it was built from, e.g. "fp32"
    format: Literal[FORMATS]  # type: ignore[valid-type]
    path: str  # relative to the bundle, inside it
    size: int
    sha256: str
    precision: Literal[PRECISIONS]  # type: ignore[valid-type]
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

    @property
    def passed(self) -> bool:
        """Passed its accuracy gate (a quantized artifact) or its validation against the source (fp32)."""
        check = self.gate if self.gate is not None else self.validation
        return bool(check.get("passed", False))


@dataclass(frozen=True)
class Generation:
    """How to drive a causal language model's decoder: the manifest's ``generation`` record."""

    kv: list[list[int]]  # [kv_heads, head_dim] per layer
    context: int  # most tokens (prompt and generated) the model takes
    eos: list[int] = field(default_factory=list)  # ids that end generation
    tokenizer: str = "tokenizer/tokenizer.json"  # inside the bundle
    chat_template: str | None = None  # the model's own (Jinja), when it has one
    past: str = "past.{layer}.{kv}"  # input names of the cache
    present: str = "present.{layer}.{kv}"  # output names of the grown cache
    positions: str | None = None  # an input choosing which positions get logits (scoring in one call)
    cache_dtype: str = "float32"


@dataclass
class Tuned:
    """``edge tune``'s choice for one target, measured on one machine of it (``edge.load`` follows it
    on a machine of the same target, CPU model and CPU count; elsewhere it says why not)."""

    target: str
    machine: dict[str, Any]  # {"cpu": model, "cpus": count, "arch": ...}: what "the same machine class" means
    created: str
    objective: Literal["latency", "memory", "energy"]
    artifact: str
    runtime: Literal[RUNTIMES]  # type: ignore[valid-type]
    threads: int
    cores: Literal["all", "big", "little"]
    graph_optimization: Literal[OPTIMIZATION_LEVELS]  # type: ignore[valid-type]
    knobs: Knobs
    measured: dict[str, Any]  # the choice's and the profile default's figures, from the same run
    table: str  # the full table inside the bundle (tune/<target>.json)
    complete: bool = True  # False: the time limit came first; the best of what was measured


@dataclass
class Manifest:
    schema_version: int
    created: str
    source: dict[str, Any]
    target: Target  # the target it was built for, as the catalog described it then
    profile: Profile  # the fully resolved profile: variants, runtime settings, tolerances
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    artifacts: list[Artifact]
    tools: dict[str, str]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # variants not built, and why
    notes: list[str] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None  # the data the accuracy gate used
    preferred: list[str] = field(default_factory=list)  # artifact names, best first
    preprocessing: dict[str, Any] = field(default_factory=dict)  # how raw text or images become inputs
    # Sizes of named axes the export was told or shown (--dim, the user's data): what the device feeds.
    dims: dict[str, int] = field(default_factory=dict)
    generation: Generation | None = None  # a causal language model: how to drive its decoder
    tuned: list[Tuned] = field(default_factory=list)  # edge tune's choices, one per target

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
            f"{path}: key 'schema_version': manifest schema version {version!r:.40}, this edge reads {SCHEMA_VERSION}",
            hint="re-export the bundle with this version of edge, or upgrade edge",
        )
    try:
        manifest = schema.load(Manifest, data, str(path))
        check(manifest, str(path))
    except ConfigError as exc:
        raise InvalidModelError(exc.message, hint=exc.hint or "re-export the bundle with 'edge export'") from exc
    return manifest


def check(manifest: Manifest, where: str) -> None:
    """What the schema's types cannot say: paths inside the bundle, hashes, specs, names that refer."""
    if not manifest.artifacts:
        raise ConfigError(f"{where}: key 'artifacts' lists no artifact")
    names = [a.name for a in manifest.artifacts]
    for field_name in ("inputs", "outputs"):
        specs = getattr(manifest, field_name)
        for j, spec in enumerate(specs):
            check_spec_json(spec, where, f"{field_name}[{j}]")
        if len({s["name"] for s in specs}) != len(specs):
            raise ConfigError(f"{where}: key '{field_name}' names a tensor twice")
    declared = {spec["name"]: spec.get("layout") for spec in manifest.inputs}
    for i, a in enumerate(manifest.artifacts):
        _check_artifact(a, f"artifacts[{i}]", names, declared, where)
    if manifest.generation is not None:
        _check_generation(manifest.generation, where)
    for i, tuned in enumerate(manifest.tuned):
        _check_tuned(tuned, f"tuned[{i}]", names, where)
    if len({t.target for t in manifest.tuned}) != len(manifest.tuned):
        raise ConfigError(f"{where}: key 'tuned' holds two choices for one target")
    unknown = [n for n in manifest.preferred if n not in names]
    if unknown:
        raise ConfigError(f"{where}: key 'preferred' names no artifact of the bundle: {', '.join(map(str, unknown))}")
    for name, size in manifest.dims.items():  # the profiler allocates inputs of these sizes
        if not 0 < size < MAX_ELEMENTS:
            raise ConfigError(f"{where}: key 'dims.{name}' must be a size > 0, got {size!r:.40}")
    threads = manifest.profile.runtime.threads
    if not 0 <= threads <= MAX_THREADS:  # the runtime takes a C int, and would start them all
        raise ConfigError(f"{where}: key 'profile.runtime.threads' must be 0 (one per core) to {MAX_THREADS}, "
                          f"got {threads!r:.40}")
    text = manifest.preprocessing.get("text")
    if text is not None and not (isinstance(text, dict) and isinstance(text.get("tokenizer"), str)
                                 and isinstance(text.get("max_length"), int) and 0 < text["max_length"] < 1 << 20):
        raise ConfigError(f"{where}: key 'preprocessing.text' must hold a tokenizer path and a max_length, "
                          f"got {text!r:.80}")


def _check_tuned(t: Tuned, key: str, names: list[str], where: str) -> None:
    if t.artifact not in names:
        raise ConfigError(f"{where}: key '{key}.artifact' names no artifact of the bundle: {t.artifact!r:.80}")
    if not 1 <= t.threads <= MAX_THREADS:
        raise ConfigError(f"{where}: key '{key}.threads' must be 1 to {MAX_THREADS}, got {t.threads!r:.40}")
    if Path(t.table).is_absolute() or ".." in Path(t.table).parts:
        raise ConfigError(f"{where}: key '{key}.table' must be a file inside the bundle, got {t.table!r:.80}")


def _check_generation(g: Generation, where: str) -> None:
    """The decoder's record: the runtime allocates the cache and names the tensors from it."""
    def fail(key: str, what: str, value: Any) -> ConfigError:
        return ConfigError(f"{where}: key 'generation.{key}' {what}, got {value!r:.80}")

    if not g.kv or any(len(pair) != 2 or not all(isinstance(v, int) and 0 < v < 1 << 16 for v in pair) for pair in g.kv):
        raise fail("kv", "must list [kv_heads, head_dim] per layer", g.kv)
    if not 0 < g.context <= 1 << 20:
        raise fail("context", "must be a number of tokens > 0", g.context)
    if any(not 0 <= token < 1 << 31 for token in g.eos):
        raise fail("eos", "must list token ids", g.eos)
    if Path(g.tokenizer).is_absolute() or ".." in Path(g.tokenizer).parts:
        raise fail("tokenizer", "must be a file inside the bundle", g.tokenizer)
    for key in ("past", "present"):
        pattern = getattr(g, key)
        if "{layer}" not in pattern or "{kv}" not in pattern or pattern.count("{") != 2:
            raise fail(key, "must name the tensors with {layer} and {kv}", pattern)
    if g.cache_dtype not in ("float32", "float16"):
        raise fail("cache_dtype", "must be float32 or float16", g.cache_dtype)


def _check_artifact(a: Artifact, key: str, names: list[str], declared: dict[str, str | None], where: str) -> None:
    """One artifact of ``check``: ``names`` are all the artifacts' names, ``declared`` the inputs' layouts."""
    if not a.name or names.count(a.name) > 1:
        raise ConfigError(f"{where}: key '{key}.name' is empty or not unique: {a.name!r:.80}")
    parts = Path(a.path).parts
    if not a.path or Path(a.path).is_absolute() or ".." in parts or "\x00" in a.path or \
            Path(a.path).suffix != f".{a.format}":
        raise ConfigError(f"{where}: key '{key}.path' must be a .{a.format} file inside the bundle, got {a.path!r:.80}")
    if not 0 <= a.size < 1 << 40:
        raise ConfigError(f"{where}: key '{key}.size' is not a file size: {a.size!r:.40}")
    if not _SHA256.match(a.sha256):
        raise ConfigError(f"{where}: key '{key}.sha256' is not a sha256 digest: {a.sha256!r:.80}")
    if a.opset is not None and not 1 <= a.opset < 1000:
        raise ConfigError(f"{where}: key '{key}.opset' is not an opset: {a.opset!r:.40}")
    for j, op in enumerate(a.ops):
        if len(op) != 2 or not isinstance(op[0], str) or not isinstance(op[1], int) or isinstance(op[1], bool):
            raise ConfigError(f"{where}: key '{key}.ops[{j}]' must be [name, version], got {op!r:.80}")
    for field_name in ("inputs", "outputs"):
        for j, spec in enumerate(getattr(a, field_name)):
            check_spec_json(spec, where, f"{key}.{field_name}[{j}]")
    for name, layout in a.layouts.items():
        mine = declared.get(name)
        if not mine or sorted(layout) != sorted(mine):
            raise ConfigError(f"{where}: key '{key}.layouts.{name}' must reorder the input's layout "
                              f"{mine!r}, got {layout!r:.40}")


def verify(bundle: Path, artifact: Artifact, digest: bool = True) -> Path:
    """The artifact's file, checked: there, and (with ``digest``) the bytes the manifest hashed."""
    file = Path(bundle) / artifact.path
    try:
        if not file.is_file():
            raise InvalidModelError(f"bundle {bundle} lists {artifact.path}, which is missing",
                                    hint="re-export the bundle")
        if digest and sha256_file(file) != artifact.sha256:
            raise InvalidModelError(f"{file} does not match the sha256 in its manifest: the file was changed or "
                                    "damaged", hint="re-export the bundle, or copy it again")
    except OSError as exc:  # a name too long for the file system, a file this user may not read
        raise InvalidModelError(f"bundle {bundle} lists {artifact.path!r:.80}, which cannot be read: {first_line(exc)}",
                                hint="re-export the bundle, or copy it again") from exc
    return file


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
            try:
                os.replace(stage, destination)
            except BaseException:  # the new bundle could not take its place: the old one goes back
                os.replace(old, destination)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, destination)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write (or replace, in one rename) the manifest of ``folder``."""
    from edge.core.files import write_atomic

    text = json.dumps(manifest.to_json(), indent=2, sort_keys=False, allow_nan=False)
    write_atomic(Path(folder) / MANIFEST, (text + "\n").encode("utf-8"))
