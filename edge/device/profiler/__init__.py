"""``edge profile``: latency, memory, energy and thermal state of an artifact, one fresh process per configuration.

    >>> from edge.device.profiler import ProfileOptions, profile
    >>> result = profile("build/digits", ProfileOptions(threads="sweep", runs=200))  # doctest: +SKIP
    >>> result.best.threads, result.results[0].latency_ms.p50                         # doctest: +SKIP
    >>> result.write("profile-digits.json")                                           # doctest: +SKIP

A configuration is (artifact, runtime, threads, CPU set); ``plan`` lists them, ``child``
measures each in a new interpreter so one cannot warm, fill or heat the next one's caches
and arenas. The result follows the ``edge.profile/1`` schema (docs/profile-schema.md).
Nothing here prints: progress goes to ``options.on_progress(done, total, label)``.
"""

from __future__ import annotations

import os
import platform
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.device.detect import MachineFacts
from edge.core.errors import UsageError
from edge.device.profiler.plan import Config, Source, plan, read_source
from edge.device.profiler.result import (
    SCHEMA,
    ConfigResult,
    Latency,
    LoopOverhead,
    Machine,
    Memory,
    ProfileResult,
    RuntimeInfo,
    Settings,
    best_of,
)

__all__ = ["SCHEMA", "ProfileOptions", "ProfileResult", "default_output", "machine_of", "measure", "parse_threads",
           "profile", "settings_of"]

RUNS = 200
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ORT_NUM_THREADS")


@dataclass(frozen=True)
class ProfileOptions:
    target: str = "auto"  # which target's meters (and name) to record; "auto" detects this machine
    runtime: str | None = None  # None: the first installed runtime of the profile's preference
    threads: int | str | None = None  # None: the profile's; "sweep": 1..N CPUs (and big vs all on big.LITTLE)
    runs: int | None = None  # timed runs (default RUNS), or
    duration_s: float | None = None  # run for this long instead
    warmup: int = 10
    input_file: Path | None = None  # .npz/.npy/image; None: random within the manifest's ranges
    artifacts: tuple[str, ...] = ()  # of a bundle, by variant or file name; empty: all
    meter: str | None = None  # force one meter instead of the target's list
    allow_estimate: bool = False  # try the "estimate" meter after the target's
    idle_s: float = 2.0  # idle baseline before each timed loop, when a meter is available
    seed: int = 0
    root: Path = Path("/")  # where meters and thermal read /sys and /proc (a recorded tree in tests)
    timeout_s: float = 600.0  # per configuration
    dims: dict[str, int] = field(default_factory=dict)  # sizes of named axes (--dim), over the bundle's own
    prompt_tokens: int = 128  # language models: the prompt read before the first token
    new_tokens: int = 64  # language models: tokens generated per generation
    on_progress: Callable[[int, int, str], None] | None = None


def parse_threads(text: str | None) -> int | str | None:
    """``"sweep"``, a positive count, or None (the profile's)."""
    if text is None or text == "sweep":
        return text
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"bad --threads '{text}'", hint="give a number >= 1, or 'sweep' to try 1..N")
    return int(text)


def default_output(path: str | Path) -> Path:
    """``profile-<bundle or file name>.json`` in the current folder."""
    path = Path(path)
    return Path(f"profile-{path.stem if path.suffix in ('.onnx', '.tflite') else path.name}.json")


def profile(path: str | Path, options: ProfileOptions = ProfileOptions()) -> ProfileResult:
    """Measure every configuration of ``path`` (a bundle, or a bare .onnx/.tflite file)."""
    from edge import __version__
    from edge.device.detect import read_facts

    _check(options)
    facts = read_facts("/")
    machine, meters = machine_of(options, facts)
    source = read_source(Path(path), options.artifacts, options.dims)
    configs = plan(source, options.runtime, options.threads, facts)
    results: list[ConfigResult] = []
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edge-profile-") as scratch:
        for index, config in enumerate(configs):
            _progress(options, index, len(configs), config.label)
            result, guessed = measure(config, options, meters, source, Path(scratch) / f"{index}.json")
            results.append(result)
            warnings += [guessed_axis(name) for name in guessed if guessed_axis(name) not in warnings]
    _progress(options, len(configs), len(configs), "done")
    return ProfileResult(datetime.now(timezone.utc).isoformat(timespec="seconds"), __version__,
                         _command(path, options), machine, settings_of(options, source), results, best_of(results),
                         warnings)


def measure(config: Config, options: ProfileOptions, meters: list[str], source: Source,
            scratch: Path) -> tuple[ConfigResult, list[str]]:
    """One configuration in a fresh process (its outcome passes through the file ``scratch``):
    the result, and the input axes whose size was guessed."""
    outcome = _spawn(_request(config, options, meters, scratch, source), options)
    return _result(config, outcome), outcome.get("guessed_axes", [])


def settings_of(options: ProfileOptions, source: Source) -> Settings:
    """How each configuration was run: runs or duration, warm-up, inputs, idle baseline."""
    return Settings(None if options.duration_s else (options.runs or RUNS), options.duration_s, options.warmup,
                    _inputs_text(options, source), options.idle_s)


def guessed_axis(name: str) -> str:
    """The warning for an axis whose size nothing recorded."""
    from edge.core.specs import GUESS

    return (f"input axis '{name}' has no size in the bundle or on the command line: profiled at {GUESS}, a guess; "
            f"pass --dim {name}=N with the size the device will feed")


def _check(options: ProfileOptions) -> None:
    if options.runs is not None and options.duration_s is not None:
        raise UsageError("give --runs or --duration, not both")
    if (options.runs is not None and options.runs < 1) or (options.duration_s is not None and options.duration_s <= 0):
        raise UsageError("--runs and --duration must be positive")
    if options.warmup < 0 or options.idle_s <= 0:
        raise UsageError("--warmup must be >= 0 and the idle baseline > 0 s")
    if options.input_file is not None and not Path(options.input_file).is_file():
        from edge.core.errors import InputNotFoundError

        raise InputNotFoundError(f"no such file: {options.input_file}")
    if options.meter is not None:
        from edge.device.meters import METERS

        if options.meter not in METERS:
            raise UsageError(f"unknown meter '{options.meter}'", hint=f"known: {', '.join(METERS)}")


def machine_of(options: ProfileOptions, facts: MachineFacts) -> tuple[Machine, list[str]]:
    """The machine record and the meters to try, from the detected or named target."""
    from edge.core import catalog
    from edge.device.detect import detect

    name = detect("/").target if options.target == "auto" else options.target
    target = catalog.load_target(name)
    meters = [options.meter] if options.meter else list(target.meters) + (["estimate"] if options.allow_estimate else [])
    environment = {k: os.environ[k] for k in _THREAD_VARIABLES if k in os.environ}
    machine = Machine(target.name, "detected" if options.target == "auto" else "named", platform.machine(),
                      facts.cpu_model, os.cpu_count(), facts.memory_mb, f"{platform.system()} {platform.release()}",
                      platform.python_version(), environment)
    return machine, meters


def _request(config: Config, options: ProfileOptions, meters: list[str], result: Path, source) -> dict[str, Any]:
    from edge.core import schema

    sizes = source.sizes
    return {
        "dims": sizes, "generation": source.generation, "vocab": source.vocab,
        "prompt_tokens": options.prompt_tokens, "new_tokens": options.new_tokens,
        "artifact": str(config.candidate.path), "runtime": config.runtime, "threads": config.threads,
        "affinity": config.affinity, "optimization": config.optimization, "knobs": schema.to_dict(config.knobs),
        "specs": config.candidate.specs,
        "layouts": config.candidate.layouts, "input_file": str(options.input_file) if options.input_file else None,
        "seed": options.seed, "runs": None if options.duration_s else (options.runs or RUNS),
        "duration_s": options.duration_s, "warmup": options.warmup, "meters": meters, "idle_s": options.idle_s,
        "root": str(options.root), "result": str(result),
    }


def _spawn(request: dict[str, Any], options: ProfileOptions) -> dict[str, Any]:
    from edge.device.profiler.child import spawn

    outcome = spawn(request, options.timeout_s + (options.duration_s or 0) + options.idle_s)
    if outcome.get("user_input"):  # the inputs do not fit the model: every configuration would fail alike
        raise UsageError(outcome["error"], hint=outcome.get("hint"))
    return outcome


def _result(config: Config, outcome: dict[str, Any]) -> ConfigResult:
    runtime = RuntimeInfo(config.runtime, outcome.get("version"), config.threads, config.affinity,
                          config.affinity_label, outcome.get("settings") or {})
    if outcome.get("error"):
        return ConfigResult(config.candidate.info, runtime, error=outcome["error"], pid=outcome.get("pid"))
    return ConfigResult(
        config.candidate.info, runtime, None, Latency(**outcome["latency_ms"]), outcome["throughput_per_s"],
        LoopOverhead(**outcome["loop_overhead_ms"]), Memory(**outcome["memory_mb"]), outcome["energy"],
        outcome["thermal"], outcome["pid"], outcome.get("input_shapes"), outcome.get("generation"),
    )


def _progress(options: ProfileOptions, done: int, total: int, label: str) -> None:
    if options.on_progress is not None:
        options.on_progress(done, total, label)


def _inputs_text(options: ProfileOptions, source) -> str:
    if options.input_file:
        return f"file {Path(options.input_file).name}"
    specs = source.candidates[0].specs
    if specs is None:
        return f"random, uniform in -1..1 or 0..10 (a bare file declares no ranges; seed {options.seed})"
    shapes = ", ".join(f"{s['name']} {list(s['shape'])}" for s in specs)
    return f"random within the manifest's ranges (seed {options.seed}); {shapes}"


def _command(path: str | Path, options: ProfileOptions) -> str:
    """The command line that repeats this run, defaults spelled out."""
    args = ["edge", "profile", str(path), "--target", options.target]
    args += ["--duration", f"{options.duration_s:g}"] if options.duration_s else ["--runs", str(options.runs or RUNS)]
    args += ["--warmup", str(options.warmup)]
    args += ["--prompt-tokens", str(options.prompt_tokens), "--new-tokens", str(options.new_tokens)]
    for flag, value in (("--runtime", options.runtime), ("--threads", options.threads), ("--input", options.input_file),
                        ("--meter", options.meter)):
        if value is not None:
            args += [flag, str(value)]
    args += [a for name in options.artifacts for a in ("--artifact", name)]
    args += [a for name, size in sorted(options.dims.items()) for a in ("--dim", f"{name}={size}")]
    args += ["--allow-estimate"] if options.allow_estimate else []
    args += ["--sysfs-root", str(options.root)] if str(options.root) != "/" else []
    return shlex.join(args + ["--idle", f"{options.idle_s:g}"])
