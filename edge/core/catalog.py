"""Targets (device classes) and profiles (how to build and run for one) as validated data.

Both live as TOML files shipped inside the wheel (``edge/targets``, ``edge/profiles``);
adding a device is adding a file. Each file is checked by ``edge.core.schema`` against the
records below. A profile may ``extends`` another; tables merge key by key, lists replace.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from edge.core import schema
from edge.core.errors import ConfigError, UnknownTargetError

# The names every other list is made from (the runtime registry, the CLI's choices, the manifest's checks).
RUNTIMES = ("onnxruntime", "litert", "tflite-runtime")
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static", "int8-weights", "int4-weights")
WEIGHT_ONLY = ("int8-weights", "int4-weights")  # block-wise weight-only (MatMulNBits): language models
MAX_THREADS = 1024  # runtime threads a profile may ask for: more is a damaged file, not a device
Runtime = Literal[RUNTIMES]  # type: ignore[valid-type]
Meter = Literal["rapl", "rpi5-pmic", "hwmon", "ina3221", "power-supply"]


@dataclass(frozen=True)
class Cluster:
    """A group of identical cores; capacity uses Linux's cpu_capacity scale (max 1024)."""

    name: str
    core: str
    count: int
    capacity: int = 1024
    max_freq_mhz: int | None = None


@dataclass(frozen=True)
class DetectRule:
    """What this machine must show to be this target; every rule given must hold."""

    arch: str
    device_tree: list[str] = field(default_factory=list)
    cpu_parts: list[str] = field(default_factory=list)
    model_name: list[str] = field(default_factory=list)
    flags_all: list[str] = field(default_factory=list)
    flags_none: list[str] = field(default_factory=list)
    heterogeneous: bool | None = None


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: Literal["aarch64", "x86_64", "armv7l"]
    isa: list[str]
    clusters: list[Cluster]
    memory_mb: int
    runtimes: list[Runtime]
    execution_providers: list[str]
    meters: list[Meter]
    detect: DetectRule
    generic: bool = False
    notes: str = ""

    @property
    def cores(self) -> int:
        return sum(c.count for c in self.clusters)


@dataclass(frozen=True)
class Variant:
    """One artifact to build: a format and a precision with its quantization recipe."""

    name: str
    format: Literal[FORMATS] = "onnx"  # type: ignore[valid-type]
    precision: Literal[PRECISIONS] = "fp32"  # type: ignore[valid-type]
    weights: Literal["per-channel", "per-tensor"] = "per-channel"
    activation_type: Literal["u8", "s8"] = "u8"
    weight_type: Literal["u8", "s8"] = "s8"
    reduce_range: bool = False
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    applies_to_ops: list[str] = field(default_factory=list)  # build only for models with one of these ops
    op_types: list[str] = field(default_factory=list)  # quantize only these op types (empty: the tool's default)
    exclude_ops: list[str] = field(default_factory=list)
    exclude_nodes: list[str] = field(default_factory=list)
    block_size: int = 32  # weight-only: weights per scale (and zero point) along the input axis
    symmetric: bool = False  # weight-only: no zero point


@dataclass(frozen=True)
class Knobs:
    """Runtime settings besides threads that change speed or memory (``edge tune`` searches them).
    Each belongs to one runtime; the others ignore it. The defaults are the runtimes' own."""

    spinning: bool = True  # onnxruntime: intra-op threads spin-wait after a run (a 1-core board loses by it)
    arena: bool = True  # onnxruntime: the CPU memory arena (less memory without, sometimes slower)
    disabled_optimizers: list[str] = field(default_factory=list)  # onnxruntime: graph rewrites left out, by name
    xnnpack: bool = True  # LiteRT, tflite-runtime: the default XNNPACK delegate (off: the builtin kernels)
    xnnpack_latest: bool = False  # LiteRT: XNNPACK's flag-protected features

    def changed(self) -> dict[str, Any]:
        """The knobs that differ from the defaults, by name."""
        default = Knobs()
        return {k: v for k, v in vars(self).items() if v != getattr(default, k)}


OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class RuntimeSettings:
    preference: list[Runtime] = field(default_factory=lambda: list(RUNTIMES))
    threads: int = 0  # 0: one per core of the affinity set
    affinity: Literal["all", "big", "little"] = "all"
    graph_optimization: Literal[OPTIMIZATION_LEVELS] = "all"  # type: ignore[valid-type]
    knobs: Knobs = field(default_factory=Knobs)


@dataclass(frozen=True)
class Tolerance:
    """An artifact passes when allclose(atol, rtol) holds and cosine >= min_cosine, per output."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_cosine: float = 0.9999
    samples: int = 3


@dataclass(frozen=True)
class Gate:
    """The accuracy budget a quantized variant must meet against the fp32 artifact."""

    kind: Literal["auto", "classifier", "embedding", "generic", "language-model"] = "auto"
    max_top1_drop: float = 1.0  # percentage points of top-1 (accuracy with labels, else agreement)
    min_cosine: float = 0.99  # embeddings: per sample; generic: per output
    min_snr_db: float = 20.0  # generic outputs
    atol: float = 1e-3  # generic outputs: every element this close to fp32 passes whatever its cosine/SNR
    samples: int = 64  # synthetic evaluation/calibration samples when no data is given
    max_repair_steps: int = 16  # layers kept in float, one per step, before giving up
    max_perplexity_increase: float = 2.0  # language models: % over the fp32 artifact's on the evaluation text
    min_next_token_agreement: float = 90.0  # language models: % of positions whose most likely next token is fp32's


@dataclass(frozen=True)
class Profile:
    name: str
    target: str | None  # None: an abstract profile, only extended by others
    opset: int
    variants: list[Variant]
    runtime: RuntimeSettings
    validation: Tolerance
    gate: Gate = field(default_factory=Gate)
    description: str = ""
    extends: str | None = None


def _data_dir(kind: str) -> Any:
    return resources.files(f"edge.{kind}")


def _read_toml(path: Any, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc


def _names(kind: str) -> list[str]:
    return sorted(p.name[:-5] for p in _data_dir(kind).iterdir() if p.name.endswith(".toml"))


def _unknown(kind: str, name: str) -> UnknownTargetError:
    known = _names(kind)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.4)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
    return UnknownTargetError(f"unknown {kind[:-1]} '{name}'", hint=hint)


def target_names() -> list[str]:
    return _names("targets")


def profile_names() -> list[str]:
    return _names("profiles")


def load_target(name: str) -> Target:
    """The target called ``name`` (a shipped one) or read from a ``.toml`` path."""
    path, where = _locate("targets", name)
    target = schema.load(Target, _read_toml(path, where), where)
    if target.name != Path(where).stem:
        raise ConfigError(f"{where}: name '{target.name}' does not match the file name")
    return target


def load_profile(name: str) -> Profile:
    """The resolved profile ``name``: its ``extends`` chain merged, then checked whole."""
    merged: dict[str, Any] = {}
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            raise ConfigError(f"profiles: 'extends' loops: {' -> '.join(chain + [current])}")
        chain.append(current)
        path, where = _locate("profiles", current)
        raw = _read_toml(path, where)
        schema.load(Profile, raw, where, partial=True)
        merged = _overlay(raw, merged)  # what was read so far (children) wins
        current = raw.get("extends")
    merged["name"] = Path(_locate("profiles", name)[1]).stem
    merged.pop("extends", None)
    merged.setdefault("target", None)
    where = f"profile '{name}' (resolved from {' -> '.join(chain)})"
    profile = schema.load(Profile, merged, where)
    if not 0 <= profile.runtime.threads <= MAX_THREADS:  # the runtimes take a C int, and would start them all
        raise ConfigError(f"{where}: key 'runtime.threads' must be 0 (one per core) to {MAX_THREADS}, "
                          f"got {profile.runtime.threads}")
    return profile


def profile_for(target: Target) -> Profile:
    """The shipped profile of a target (same name)."""
    profile = load_profile(target.name)
    if profile.target != target.name:
        raise ConfigError(f"profiles/{target.name}.toml: 'target' must be '{target.name}'")
    foreign = [r for r in profile.runtime.preference if r not in target.runtimes]
    if foreign:
        raise ConfigError(
            f"profiles/{target.name}.toml: runtime.preference names {', '.join(foreign)}, "
            f"which target '{target.name}' does not list in its runtimes"
        )
    return profile


def _locate(kind: str, name: str) -> tuple[Any, str]:
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise UnknownTargetError(f"{kind[:-1]} file not found: {name}")
        return path, str(path)
    entry = _data_dir(kind) / f"{name}.toml"
    if not entry.is_file():
        raise _unknown(kind, name)
    return entry, f"{kind}/{name}.toml"


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` laid over it: tables merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out
