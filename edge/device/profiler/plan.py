"""Which configurations to measure: (artifact, runtime, threads, affinity), before any is run.

Everything a user can get wrong (a missing file, an unknown artifact or runtime, one that is
not installed) fails here, in the parent, before a child process starts.
"""

from __future__ import annotations

import os
from dataclasses import replace, dataclass, field
from pathlib import Path
from typing import Any

from edge.core.bundle import SUFFIXES, read_manifest, sha256_file
from edge.core.bundle import verify as verify_artifact
from edge.core.catalog import Knobs, RuntimeSettings
from edge.device.detect import MachineFacts
from edge.core.errors import InputNotFoundError, MissingDependencyError, UsageError
from edge.device.model import pinned
from edge.device.profiler.result import ArtifactInfo
from edge.device.runtime import BACKENDS, backend, for_format
from edge.device.runtime.tflite_ops import unsupported
from edge.core.specs import TensorSpec



@dataclass(frozen=True)
class Candidate:
    """One artifact and where it lives; ``specs`` None means: ask the session (a bare file)."""

    info: ArtifactInfo
    path: Path
    specs: list[dict[str, Any]] | None
    layouts: dict[str, str] = field(default_factory=dict)
    ops: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Config:
    candidate: Candidate
    runtime: str
    threads: int
    affinity: list[int]
    affinity_label: str
    optimization: str = "all"
    knobs: Knobs = field(default_factory=Knobs)

    @property
    def label(self) -> str:
        return f"{self.candidate.info.name} · {self.runtime} · {self.threads} thread(s) · {self.affinity_label} cores"


@dataclass(frozen=True)
class Source:
    """What the path holds: its artifacts and the profile's runtime settings (a bundle's, or none)."""

    name: str
    candidates: list[Candidate]
    runtime_settings: RuntimeSettings  # the bundle's profile's; the defaults for a bare file
    sizes: dict[str, int] = field(default_factory=dict)  # named axis -> the size every artifact is fed
    generation: dict[str, Any] | None = None  # a language model's decoder record: it is timed per token
    vocab: int = 0


def read_source(path: Path, wanted: tuple[str, ...] = (), dims: dict[str, int] | None = None) -> Source:
    """The artifacts of a bundle (all, or the ones named by variant or file name), or one bare file;
    ``dims`` (``--dim``) sizes named axes over what the bundle records."""
    dims = dict(dims or {})
    path = Path(path)
    if path.suffix in SUFFIXES and not path.is_dir():
        if not path.is_file():
            raise InputNotFoundError(f"no such file: {path}")
        info = ArtifactInfo(path.name, None, SUFFIXES[path.suffix], None, sha256_file(path), path.stat().st_size)
        return Source(path.stem, [Candidate(info, path, None)], RuntimeSettings(), dims)
    if path.is_file():
        raise UsageError(f"cannot tell the format of {path.name}", hint="give a bundle folder, a .onnx or a .tflite file")
    manifest = read_manifest(path)
    chosen = [a for a in manifest.artifacts if not wanted or a.name in wanted or a.path in wanted]
    unknown = [w for w in wanted if not any(w in (a.name, a.path) for a in manifest.artifacts)]
    if unknown:
        raise UsageError(f"bundle {path} has no artifact {', '.join(unknown)}",
                         hint=f"it has {', '.join(a.name for a in manifest.artifacts)}")
    candidates = []
    for a in chosen:
        file = verify_artifact(path, a)
        info = ArtifactInfo(a.path, str(path), a.format, a.precision, a.sha256, a.size)
        specs = [s.to_json() for s in pinned([TensorSpec.from_json(s) for s in manifest.inputs], a.inputs)]  # as edge.load
        candidates.append(Candidate(info, file, specs, a.layouts, a.ops))
    sizes = {**common_sizes(manifest), **dims}
    # every artifact gets the same input shapes, or the comparison would be unfair
    candidates = [replace(c, specs=[{**s, "shape": [sizes.get(d, d) if isinstance(d, str) else d for d in s["shape"]]}
                                    for s in c.specs]) for c in candidates]
    if manifest.generation is not None:
        from edge.core import schema

        vocab = next((s["shape"][-1] for s in manifest.outputs if s["name"] == "logits"), 0)
        return Source(path.name, candidates, manifest.profile.runtime, sizes, schema.to_dict(manifest.generation), vocab)
    return Source(path.name, candidates, manifest.profile.runtime, sizes)


def common_sizes(manifest) -> dict[str, int]:
    """One size per named axis for all of a bundle's artifacts: the size the export validated it at
    (``--dim``, or the size all of the user's data had), else the size a fixed-shape (TFLite) artifact
    was built for, else the tokenizer's max_length for a text axis, else 1 for batch. An axis with
    none of these is left out: the measuring process guesses it and the result says so."""
    sizes: dict[str, int] = dict(manifest.dims)
    specs = [TensorSpec.from_json(s) for s in manifest.inputs]
    for artifact in manifest.artifacts:
        for spec, fixed in zip(specs, pinned(specs, artifact.inputs)):
            for axis, name in spec.dynamic_axes.items():
                if isinstance(fixed.shape[axis], int):
                    sizes.setdefault(name, fixed.shape[axis])
    text = (manifest.preprocessing or {}).get("text")
    for spec in specs:
        for axis, name in spec.dynamic_axes.items():
            if axis == 0:
                sizes.setdefault(name, 1)
            elif text and spec.dtype.startswith("int"):
                sizes.setdefault(name, int(text["max_length"]))
    return sizes


def runtimes(candidate: Candidate, wanted: str | None, preference: list[str]) -> list[str]:
    """The runtime to measure ``candidate`` on: the one asked for, else the first installed that can run it."""
    fmt = candidate.info.format
    if wanted is not None:
        backend(wanted)  # unknown or not installed: UsageError / MissingDependencyError with the pip line
        return [wanted] if fmt in BACKENDS[wanted].formats else []
    order = [n for n in preference if n in for_format(fmt)] + [n for n in for_format(fmt) if n not in preference]
    usable = [n for n in order if BACKENDS[n].installed() and not unsupported(candidate.ops, n)]
    if not usable:
        raise MissingDependencyError(f"no installed runtime runs {candidate.info.name} ({fmt})",
                                     hint=BACKENDS[order[0]].pip if order else None)
    return usable[:1]


def affinity_sets(facts: MachineFacts, usable: list[int], policy: str, sweep: bool) -> list[tuple[str, list[int]]]:
    """(label, CPUs) to run on: on big.LITTLE a sweep tries the big cores alone and all cores."""
    everything = sorted(usable)
    if not facts.heterogeneous:
        return [("all", everything)]
    big = [c for c in facts.big_cores() if c in usable]
    if sweep:
        return [("big", big), ("all", everything)] if big and big != everything else [("all", everything)]
    groups = {"all": everything, "big": big, "little": [c for c in everything if c not in big]}
    return [(policy, groups[policy])] if groups.get(policy) else [("all", everything)]


def thread_counts(threads: int | str | None, cpus: list[int], profile_threads: int) -> list[int]:
    """``sweep``: 1..len(cpus); a number: that; None: the profile's (0 there: one per CPU of the set)."""
    if threads == "sweep":
        return list(range(1, len(cpus) + 1))
    if isinstance(threads, int):
        return [threads]
    return [profile_threads or len(cpus) or 1]


def plan(source: Source, runtime: str | None, threads: int | str | None, facts: MachineFacts,
         usable: list[int] | None = None) -> list[Config]:
    """Every configuration, in the order they will run."""
    settings = source.runtime_settings
    usable = usable if usable is not None else sorted(_usable_cpus())
    sets = affinity_sets(facts, usable, settings.affinity, threads == "sweep")
    configs = []
    for candidate in source.candidates:
        for name in runtimes(candidate, runtime, settings.preference):
            for label, cpus in sets:
                for count in thread_counts(threads, cpus, settings.threads):
                    configs.append(Config(candidate, name, count, cpus, label, settings.graph_optimization, settings.knobs))
    if not configs:
        formats = sorted({c.info.format for c in source.candidates})
        raise UsageError(f"runtime {runtime} cannot run any artifact of {source.name} ({', '.join(formats)})",
                         hint="choose a runtime for that format, or leave --runtime out")
    return configs


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))
