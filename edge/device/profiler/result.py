"""The ``edge.profile/1`` result as typed records; field names are the JSON keys of docs/profile-schema.md.

Energy and thermal stay plain dicts: energy has two shapes (measured, or unavailable with the
reason) and thermal is what ``edge.device.thermal`` serialises; both are built where they are measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core import schema

SCHEMA = "edge.profile/1"


@dataclass(frozen=True)
class Machine:
    target: str
    target_source: str  # "detected" or "named"
    arch: str
    cpu: str | None
    cores: int | None
    memory_mb: int | None
    os: str
    python: str
    environment: dict[str, str] = field(default_factory=dict)  # threading variables that were set, for reproduction


@dataclass(frozen=True)
class Settings:
    runs: int | None
    duration_s: float | None
    warmup: int
    inputs: str
    idle_baseline_s: float


@dataclass(frozen=True)
class ArtifactInfo:
    name: str  # the file name inside the bundle
    bundle: str | None  # None: a bare file
    format: str
    precision: str | None  # None: a bare file does not say
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str | None  # None when the child failed before it could tell
    threads: int
    affinity: list[int]
    affinity_label: str  # "all", "big" or "little"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Latency:
    init: float
    first: float
    warmup_count: int
    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    samples: list[float]


@dataclass(frozen=True)
class LoopOverhead:
    per_iteration: float
    method: str


@dataclass(frozen=True)
class Memory:
    after_imports: float | None
    after_init: float | None
    init_delta: float | None
    peak: float | None
    model: float | None
    method: str


@dataclass(frozen=True)
class ConfigResult:
    artifact: ArtifactInfo
    runtime: RuntimeInfo
    error: str | None = None
    latency_ms: Latency | None = None
    throughput_per_s: float | None = None
    loop_overhead_ms: LoopOverhead | None = None
    memory_mb: Memory | None = None
    energy: dict[str, Any] | None = None
    thermal: dict[str, Any] | None = None
    pid: int | None = None  # the child process that measured it (one per configuration)
    input_shapes: dict[str, list[int]] | None = None  # the concrete shape of every input, as the caller fed it
    generation: dict[str, Any] | None = None  # a language model: time to first token, decode tokens/s (latency_ms: per token)


@dataclass(frozen=True)
class Best:
    artifact: str
    runtime: str
    threads: int
    affinity_label: str
    by: str
    p50_ms: float


@dataclass(frozen=True)
class ProfileResult:
    created: str
    edge_version: str
    command: str
    machine: Machine
    settings: Settings
    results: list[ConfigResult]
    best: Best | None
    warnings: list[str] = field(default_factory=list)  # what makes a figure less than it seems (a guessed size)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = schema.to_dict(self)
        return {"schema": data.pop("schema"), **data}  # the version first, as readers check it first

    def write(self, path: str | Path) -> Path:
        """Write the JSON file (replacing one that is there) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
        return path


def best_of(results: list[ConfigResult]) -> Best | None:
    """The configuration with the lowest median latency among those that were measured."""
    measured = [r for r in results if r.latency_ms is not None]
    if not measured:
        return None
    top = min(measured, key=lambda r: r.latency_ms.p50)
    return Best(top.artifact.name, top.runtime.name, top.runtime.threads, top.runtime.affinity_label, "p50",
                top.latency_ms.p50)
