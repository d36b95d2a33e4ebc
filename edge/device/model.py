"""``edge.load``: the on-device runtime. Numpy and one inference runtime, nothing else.

    >>> import edge
    >>> model = edge.load("build/demo/digits")            # doctest: +SKIP
    >>> model.run({"pixels": image})["logits"].argmax()    # doctest: +SKIP

A bundle's manifest says which artifacts exist, which passed their gates and which was
fastest on the target; ``load`` takes the first of those that an installed runtime can
run, checks its sha256, and configures threads (and, on big.LITTLE, big-core affinity)
from the profile. ``Model.run`` checks every input against the manifest before the runtime
sees it, so a wrong shape is a clear ``InputError``, not a C++ trace.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from edge.core.bundle import SUFFIXES, Artifact, Manifest, Tuned, read_manifest
from edge.core.catalog import MAX_THREADS
from edge.core.bundle import verify as verify_artifact
from edge.core.errors import EdgeError, InputNotFoundError, InvalidModelError, MissingDependencyError, UsageError
from edge.device.runtime import BACKENDS, Backend, Session, backend, for_format
from edge.device.runtime.tflite_ops import unsupported
from edge.core.specs import TensorSpec

if TYPE_CHECKING:
    from edge.device.llm import LanguageModel

class InputError(UsageError):
    """An input that does not fit the model: wrong name, shape, dtype, or a NaN."""


@dataclass(frozen=True)
class Choice:
    """What ``load`` picked and why: recorded so an app can log it."""

    artifact: str
    runtime: str
    runtime_version: str
    threads: int
    affinity: list[int] | None
    reason: str
    notes: tuple[str, ...] = ()  # what the app should know: a tuned choice that does not apply here


class Model:
    """A loaded artifact: ``run`` it with a dict or positional arrays, get named outputs.

    ``run`` may be called from several threads at once: onnxruntime runs the calls
    concurrently; the TFLite interpreters serialise them behind a lock.
    """

    def __init__(self, session: Session, inputs: list[TensorSpec], outputs: list[TensorSpec], choice: Choice,
                 layouts: Mapping[str, str] | None = None, shape_hint: str | None = None) -> None:
        self._session = session
        self._shape_hint = shape_hint  # why a shape is fixed (a TFLite artifact), and what to do
        self.inputs = inputs
        self.outputs = outputs
        self.choice = choice
        self._names = [s.name for s in inputs]
        self._specs = {s.name: (s, _numpy_dtype(s.dtype)) for s in inputs}
        # The artifact may want another layout than the user gives (NHWC TFLite for NCHW input).
        self._transpose = {}
        for spec in inputs:
            wanted = (layouts or {}).get(spec.name)
            if wanted and spec.layout and wanted != spec.layout:
                self._transpose[spec.name] = tuple(spec.layout.index(c) for c in wanted)

    @property
    def session(self) -> Session:
        """The runtime session underneath (``run`` checks inputs, then calls its ``run``)."""
        return self._session

    def __repr__(self) -> str:
        c = self.choice
        return f"<edge.Model {c.artifact} on {c.runtime} {c.runtime_version}, {c.threads} threads>"

    def run(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """Run the model; returns ``{output name: array}``.

        >>> model.run({"pixels": x})      # doctest: +SKIP
        >>> model.run(x)                  # positional, in ``model.inputs`` order  # doctest: +SKIP
        """
        feeds = self._feeds(args, kwargs)
        return self._session.run(feeds)

    __call__ = run

    def prepare(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """The checked feeds ``run`` would hand the runtime (transposed to the artifact's layout),
        for callers that time the runtime alone, like ``edge profile``.

        >>> feeds = model.prepare({"pixels": x})   # doctest: +SKIP
        """
        return self._feeds(args, kwargs)

    def _feeds(self, args: tuple, kwargs: dict) -> dict[str, np.ndarray]:
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            given = dict(args[0])
        elif args and not kwargs:
            if len(args) != len(self._names):
                raise InputError(f"the model takes {len(self._names)} input(s) ({', '.join(self._names)}), got {len(args)}")
            given = dict(zip(self._names, args))
        else:
            given = kwargs
        unknown = [k for k in given if k not in self._specs]
        missing = [n for n in self._names if n not in given]
        if unknown or missing:
            detail = "; ".join(filter(None, [unknown and f"unknown {', '.join(unknown)}", missing and f"missing {', '.join(missing)}"]))
            raise InputError(f"inputs do not match the model ({detail})", hint=f"the model takes {', '.join(self._names)}")
        feeds: dict[str, np.ndarray] = {}
        sizes: dict[str, int] = {}
        for name in self._names:
            spec, dtype = self._specs[name]
            value = given[name]
            if dtype is None:  # a sequence, an optional or a type numpy lacks (bfloat16): the runtime checks it
                feeds[name] = value
                continue
            if not isinstance(value, np.ndarray):
                value = np.asarray(value, dtype=dtype)  # lists and scalars take the declared dtype
            if value.dtype != dtype:
                raise InputError(f"input '{name}': expected dtype {dtype}, got {value.dtype}",
                                 hint=f"convert with .astype(np.{dtype})")
            _check_shape(name, spec, value.shape, sizes, self._shape_hint)
            if spec.finite and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise InputError(f"input '{name}' holds NaN or infinity, which this model does not accept")
            axes = self._transpose.get(name)
            feeds[name] = np.ascontiguousarray(value.transpose(axes)) if axes else value
        return feeds


def _numpy_dtype(name: str) -> np.dtype | None:
    try:
        return np.dtype(name)
    except TypeError:
        return None


def _check_shape(name: str, spec: TensorSpec, shape: tuple, sizes: dict[str, int], hint: str | None = None) -> None:
    expected = list(spec.shape)
    if len(shape) != len(expected):
        raise InputError(f"input '{name}': expected {len(expected)} dimensions {expected}, got shape {list(shape)}", hint=hint)
    for axis, (want, got) in enumerate(zip(expected, shape)):
        if isinstance(want, int):
            if want != got:
                raise InputError(f"input '{name}': expected shape {expected}, got {list(shape)} (axis {axis} must be {want})", hint=hint)
        elif sizes.setdefault(want, got) != got:
            raise InputError(f"input '{name}': axis '{want}' is {got} here but {sizes[want]} in another input", hint=hint)


def load(path: str | os.PathLike, target: str = "auto", runtime: str | Backend | None = None,
         threads: int | None = None, verify: bool = True, artifact: str | None = None) -> Model | LanguageModel:
    """Load a bundle (or a bare ``.onnx``/``.tflite`` file) for this device.

    ``target="auto"`` checks that the bundle was built for this machine's architecture;
    naming the bundle's target runs it anyway. ``runtime`` restricts the choice to one
    runtime (a name or a backend object). ``threads`` overrides the profile's.
    ``verify`` checks the artifact's sha256 against the manifest. ``artifact`` names the variant to
    run (e.g. ``"fp32"``) instead of the first preferred one.

    >>> model = edge.load("build/minilm", threads=2)   # doctest: +SKIP
    >>> model.choice.artifact, model.choice.runtime    # doctest: +SKIP
    ('int8', 'onnxruntime')
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 0 <= threads <= MAX_THREADS):  # the runtime would raise a bare TypeError
        raise UsageError(f"threads must be 0 (one per core) to {MAX_THREADS}, got {threads!r:.40}")
    path = Path(path)
    if path.is_file() or path.suffix in SUFFIXES:
        return _load_file(path, runtime, threads)
    manifest = read_manifest(path)
    _check_target(manifest, target)
    settings = manifest.profile.runtime
    tuned, notes = _tuned(manifest, runtime, artifact)
    if tuned is not None:
        record, (artifact_record, runtime_name, reason) = tuned
        settings = replace(settings, threads=record.threads, affinity=record.cores,
                           graph_optimization=record.graph_optimization, knobs=record.knobs)
    else:
        artifact_record, runtime_name, reason = _choose(manifest, runtime, artifact)
    file = verify_artifact(path, artifact_record, digest=verify)
    chosen_backend = runtime if runtime is not None and not isinstance(runtime, str) else backend(runtime_name)
    affinity = _affinity(settings.affinity)
    count = threads if threads is not None else (settings.threads or len(affinity or []) or os.cpu_count() or 1)
    session = chosen_backend.open(file, threads=count, optimization=settings.graph_optimization, knobs=settings.knobs)
    artifact = artifact_record
    inputs = pinned([TensorSpec.from_json(s) for s in manifest.inputs], artifact.inputs)
    outputs = pinned([TensorSpec.from_json(s) for s in manifest.outputs], artifact.outputs)
    choice = Choice(artifact.name, chosen_backend.name, chosen_backend.version(), count, affinity, reason, tuple(notes))
    hint = (f"'{artifact.name}' is a {artifact.format} artifact with one fixed shape; runtime='onnxruntime' "
            f"(edge run --runtime onnxruntime) picks an ONNX artifact whose axes stay open") if artifact.inputs else None
    model = Model(session, inputs, outputs, choice, artifact.layouts, hint)
    if manifest.generation is not None:  # a language model: generate, stream and score on top of run
        from edge.device.llm import LanguageModel

        return LanguageModel(model, path, manifest.generation)
    return model


def pinned(specs: list[TensorSpec], artifact_specs: list[dict[str, Any]]) -> list[TensorSpec]:
    """The manifest's specs (names, dtypes, layouts the caller uses) with the dynamic axes an
    artifact fixes (``Artifact.inputs``/``outputs``: a TFLite file takes one shape) set to its
    sizes, read through its layout."""
    own = {s["name"]: TensorSpec.from_json(s) for s in artifact_specs}
    out = []
    for spec in specs:
        mine = own.get(spec.name)
        if mine is None or len(mine.shape) != len(spec.shape):
            out.append(spec)
            continue
        shape = mine.shape
        if mine.layout and spec.layout and mine.layout != spec.layout and sorted(mine.layout) == sorted(spec.layout):
            shape = tuple(mine.shape[mine.layout.index(c)] for c in spec.layout)
        fixed = tuple(d if isinstance(d, int) or not isinstance(n, int) else n for d, n in zip(spec.shape, shape))
        out.append(TensorSpec(spec.name, spec.dtype, fixed, spec.range, spec.layout, spec.finite))
    return out


def _load_file(path: Path, runtime: str | Backend | None, threads: int | None) -> Model:
    fmt = SUFFIXES.get(path.suffix)
    if fmt is None:
        raise UsageError(f"cannot tell the format of {path.name}", hint="give a bundle folder, a .onnx or a .tflite file")
    if not path.is_file():
        raise InputNotFoundError(f"no such file: {path}")
    if runtime is None or isinstance(runtime, str):
        names = [runtime] if runtime else [n for n in for_format(fmt) if BACKENDS[n].installed()] or for_format(fmt)[:1]
        chosen = backend(names[0])
    else:
        chosen = runtime
    session = chosen.open(path, threads=threads or 0)
    choice = Choice(path.name, chosen.name, chosen.version(), threads or 0, None, "a bare file")
    return Model(session, session.inputs, session.outputs, choice)


def _check_target(manifest: Manifest, target: str) -> None:
    built_for, arch = manifest.target.name, manifest.target.arch
    if target == "auto":
        import platform

        here = platform.machine().lower().replace("arm64", "aarch64").replace("amd64", "x86_64")
        if arch and arch != here:
            raise InvalidModelError(
                f"this bundle was built for {built_for} ({arch}); this machine is {here}",
                hint=f"export it for this machine (--target auto), or pass target='{built_for}' to run it here anyway",
            )
    elif target != built_for:
        raise UsageError(f"this bundle was built for {built_for}, not {target}", hint="export it with --target " + target)


def _choose(manifest: Manifest, runtime: str | Backend | None, named: str | None = None) -> tuple[Artifact, str, str]:
    """The first preferred artifact (or the one ``named``) that passed its checks and that an installed runtime runs."""
    wanted = runtime if isinstance(runtime, str) or runtime is None else runtime.name
    preference = manifest.profile.runtime.preference
    by_name = {a.name: a for a in manifest.artifacts}
    order = [by_name[n] for n in manifest.preferred if n in by_name] or manifest.artifacts
    if named is not None:
        if named not in by_name:
            raise UsageError(f"this bundle has no artifact '{named}'", hint=f"it has {', '.join(by_name)}")
        order = [by_name[named]]
    refused = []
    for artifact in order:
        if not artifact.passed:
            refused.append(f"{artifact.name}: failed its check")
            continue
        names = [n for n in preference if n in for_format(artifact.format)] + [
            n for n in for_format(artifact.format) if n not in preference]
        for name in names:
            if wanted and name != wanted:
                continue
            too_new = unsupported(artifact.ops, name)
            if too_new:
                refused.append(f"{artifact.name}: {name} cannot run {', '.join(too_new)}")
                continue
            if isinstance(runtime, str) or runtime is None:
                if not BACKENDS[name].installed():
                    refused.append(f"{artifact.name}: {name} is not installed ({BACKENDS[name].pip})")
                    continue
            why = "the fastest measured" if artifact.latency else "first in the profile's order"
            return artifact, name, f"{why} among the artifacts that passed their checks"
        if wanted and wanted not in for_format(artifact.format):
            refused.append(f"{artifact.name}: a {artifact.format} artifact, which {wanted} cannot run")
    hint = next((BACKENDS[n].pip for n in BACKENDS if any(f"{n} is not installed" in r for r in refused)), None)
    error = MissingDependencyError if any("not installed" in r for r in refused) else EdgeError
    raise error(f"no artifact of this bundle can run here ({'; '.join(refused) or 'none listed'})", hint=hint)


def _affinity(policy: str) -> list[int] | None:
    """Pin to the big (or little) cores of a big.LITTLE machine when the profile or the tuned
    choice asks; None: no pinning."""
    if policy == "all" or not hasattr(os, "sched_setaffinity"):
        return None
    from edge.device.detect import read_facts

    facts = read_facts("/")
    if not facts.heterogeneous:
        return None
    big = facts.big_cores()
    cores = big if policy == "big" else sorted(set(os.sched_getaffinity(0)) - set(big))
    if not cores:
        return None
    os.sched_setaffinity(0, cores)
    return cores


def _tuned(manifest: Manifest, runtime: str | Backend | None,
           named: str | None) -> tuple[tuple[Tuned, tuple[Artifact, str, str]] | None, list[str]]:
    """The tuned choice measured on this machine class (target, CPU model, CPU count), checked like
    any other choice; else None and, when the bundle holds choices for other machines, why not."""
    if not manifest.tuned or named is not None:
        return None, []
    from edge.device.detect import detect

    found = detect("/")
    cpu, cpus = found.facts.cpu_model, os.cpu_count()
    mine = next((t for t in manifest.tuned if t.target == found.target and t.machine.get("cpu") == cpu
                 and t.machine.get("cpus") == cpus), None)
    if mine is None:
        others = "; ".join(f"{t.target} ({t.machine.get('cpu')}, {t.machine.get('cpus')} CPUs)" for t in manifest.tuned)
        note = (f"the bundle's tuned choice was not applied: it was measured on {others}, and this machine is "
                f"{found.target} ({cpu}, {cpus} CPUs); run 'edge tune' here to tune for it")
        logging.getLogger("edge").warning(note)
        return None, [note]
    wanted = runtime if isinstance(runtime, str) or runtime is None else runtime.name
    if wanted is not None and wanted != mine.runtime:
        return None, [f"the tuned choice runs on {mine.runtime}; runtime {wanted} was asked for instead"]
    try:
        artifact, name, _ = _choose(manifest, mine.runtime, mine.artifact)
    except EdgeError as exc:
        note = f"the tuned choice ({mine.artifact} on {mine.runtime}) cannot run here: {exc.message}"
        logging.getLogger("edge").warning(note)
        return None, [note]
    figure = mine.measured.get("choice", {})
    value = f": {figure['value']:.4g} {figure['unit']}" if figure.get("value") is not None else ""
    return (mine, (artifact, name, f"tuned on this machine class ({mine.target}, {cpu}) on {mine.created[:10]} "
                                   f"for {mine.objective}{value}")), []
