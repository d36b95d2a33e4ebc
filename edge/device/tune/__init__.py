"""``edge tune``: measure a bundle's configurations on this machine and keep the best in the bundle.

    >>> from edge.device.tune import TuneOptions, tune
    >>> outcome = tune("build/minilm", TuneOptions(objective="latency", max_minutes=5))  # doctest: +SKIP
    >>> outcome.choice.label, outcome.table["process_noise"]                            # doctest: +SKIP

The search, in four stages, each a race (``edge.device.tune.race``) of fresh measuring
processes (the profiler's):

1. the profile's default twice (two processes: the machine's process noise), then every
   artifact that passed its gate, in every installed runtime that runs it, at the profile's
   threads and settings;
2. the survivors at every thread count of every core set (big and all cores on big.LITTLE);
3. for the two best, each runtime setting that matters, one at a time (onnxruntime: graph
   optimisation level, spinning, arena, each fusion its optimizer wrote into the graph; LiteRT:
   XNNPACK off, XNNPACK's latest features); a setting is kept only when it is clearly better;
4. the finalists (still within noise of each other), one longer round each.

Every measurement is saved at once in ``BUNDLE/tune/<target>.json``; a rerun on the same machine
class with the same artifacts replays them and goes on where the last run stopped (Ctrl-C, the
time limit). The choice goes into the manifest's ``tuned`` list for the machine's target.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.core.errors import EdgeError, UsageError
from edge.device.tune.race import OBJECTIVES, Bound, OutOfTime, Rounds, bound, dominated, noise, race, survivors, unique
from edge.device.tune.space import Space, Trial, fused, space
from edge.device.tune import table as tables

__all__ = ["OBJECTIVES", "TuneOptions", "TuneOutcome", "tune"]

# Round sizes: seconds of timed runs for a model, tokens for a language model; the last is the final round.
SCHEDULE = (0.3, 0.6, 1.2)
FINAL = 2.0
LM_SCHEDULE = (24, 48)  # a language model's process costs seconds to load: fewer, longer rounds
LM_FINAL = 64
TOP = 2  # artifact/runtime pairs that go on to the thread and setting stages


@dataclass(frozen=True)
class TuneOptions:
    objective: str = "latency"
    max_minutes: float = 10.0
    fresh: bool = False  # discard earlier measurements instead of resuming
    dims: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 128  # language models; the tokens generated per round are the schedule's
    root: Path = Path("/")  # where detection, meters and thermal read /sys and /proc (a recorded tree in tests)
    timeout_s: float = 600.0
    on_progress: Callable[[dict[str, Any]], None] | None = None


@dataclass
class TuneOutcome:
    table: dict[str, Any]  # the edge.tune/1 document, as written to the bundle
    path: Path  # where it was written
    choice: Trial | None
    default: Trial
    complete: bool
    notes: list[str]


class _Search:
    """The stages, over a store of rounds that is saved after every measurement."""

    def __init__(self, space_: Space, options: TuneOptions, state: tables.State, measure: Callable) -> None:
        self.space, self.options, self.state, self._measure = space_, options, state, measure
        self.deadline = time.monotonic() + options.max_minutes * 60
        self.language = space_.source.generation is not None
        self.schedule = LM_SCHEDULE if self.language else SCHEDULE
        self.final = LM_FINAL if self.language else FINAL
        self.stage = ""
        self.cost: dict[str, float] = {}  # artifact|runtime -> seconds a measuring process took beyond its timed runs

    def rounds(self, trial: Trial) -> Rounds:
        return self.state.rounds(trial)

    def bound(self, trial: Trial) -> Bound | None:
        return bound(self.rounds(trial), self.options.objective, self.floor())

    def floor(self) -> float:
        return noise(self.state.all_rounds(), self.options.objective)

    def race(self, trials: list[Trial], schedule: tuple) -> list[Trial]:
        return race(trials, self.rounds, self.measure, self.options.objective, schedule, self.drop, self.floor)

    def measure(self, trial: Trial, index: int, size: float) -> None:
        saved = self.state.replay(trial)
        if saved is not None:  # measured by an earlier run that stopped: taken as it was
            self.state.add(trial, self.stage, saved["result"], saved["seconds"], replayed=True)
            return
        pair = f"{trial.artifact}|{trial.runtime}"
        expected = self.cost.get(pair, 2.0) + (size if not self.language else 0)
        if time.monotonic() + expected > self.deadline:
            raise OutOfTime()
        self._progress(f"{trial.label} (round {index + 1})")
        started = time.monotonic()
        result = self._measure(trial, size)
        spent = time.monotonic() - started
        timed = 0 if self.language or result.get("error") else sum(result["latency_ms"]["samples"]) / 1000
        self.cost[pair] = max(0.1, spent - timed)
        self.state.add(trial, self.stage, result, spent)

    def drop(self, trial: Trial, best: Trial | None, index: int) -> None:
        if trial.key not in self.state.dropped:
            why = f"clearly worse than {best.label}" if best is not None else "failed"
            self.state.dropped[trial.key] = f"dropped after round {index + 1} of stage '{self.stage}': {why}"

    def run(self) -> list[Trial]:
        """The finalists, best first."""
        objective = self.options.objective
        self.stage = "runtimes"
        default = self.space.default
        for index in range(2):  # two processes of one configuration: the machine's process noise
            if len(self.rounds(default).results) <= index:
                self.measure(default, index, self.schedule[0])
        first = self.race(self.space.first_trials(), self.schedule)
        pairs = _distinct(first)[:TOP]
        self.stage = "threads"
        trials = [t for pair in pairs for t in [pair] + self.space.thread_trials(pair)]
        ranked = self.race(trials, self.schedule)
        leaders = _distinct(ranked)[:TOP]
        self.stage = "settings"
        improved = [self._settings(leader) for leader in leaders]
        self.stage = "final"
        finalists = survivors(unique(improved), self.rounds, objective, self.floor())
        for trial in finalists:  # one long round each, for the figure the manifest keeps
            if not self.state.has_stage(trial, "final"):
                self.measure(trial, len(self.rounds(trial).results), self.final)
        return survivors(finalists, self.rounds, objective, self.floor())

    def _settings(self, leader: Trial) -> Trial:
        fusions = self.state.fusions(leader, self.space)
        for index in range(len(self.space.setting_axes(leader, fusions))):
            axis = self.space.setting_axes(leader, fusions)[index]  # each axis varies the leader as it stands now
            ranked = self.race([leader] + axis, self.schedule)
            if ranked and ranked[0].key != leader.key and dominated(self.bound(leader), self.bound(ranked[0])):
                leader = ranked[0]  # a setting must be clearly better to replace the default
        return leader

    def _progress(self, label: str) -> None:
        if self.options.on_progress is not None:
            self.options.on_progress({"stage": self.stage, "label": label, "measured": self.state.measured,
                                      "seconds_left": max(0.0, self.deadline - time.monotonic()),
                                      "limit_s": self.options.max_minutes * 60})


def _distinct(trials: list[Trial]) -> list[Trial]:
    """The best trial of each artifact/runtime pair, in order."""
    seen, out = set(), []
    for trial in trials:
        if (trial.artifact, trial.runtime) not in seen:
            seen.add((trial.artifact, trial.runtime))
            out.append(trial)
    return out


def tune(path: str | Path, options: TuneOptions = TuneOptions()) -> TuneOutcome:
    """Tune the bundle at ``path`` on this machine; the table and the choice are written into it."""
    from edge.core.bundle import read_manifest
    from edge.device.detect import detect, read_facts
    from edge.device.model import _check_target
    from edge.device.profiler import ProfileOptions, machine_of, measure
    from edge.device.profiler.plan import _usable_cpus, read_source

    if options.objective not in OBJECTIVES:
        raise UsageError(f"unknown objective '{options.objective}'", hint=f"choose {', '.join(OBJECTIVES)}")
    if options.max_minutes <= 0:
        raise UsageError("--max-minutes must be positive")
    path = Path(path)
    if not (path / "manifest.json").is_file() and path.suffix in (".onnx", ".tflite"):
        raise UsageError("edge tune needs a bundle (its choice is kept in the manifest)", hint="export one with edge export")
    manifest = read_manifest(path)
    _check_target(manifest, "auto")  # a bundle for another architecture would be tuned for nothing
    source = read_source(path, (), options.dims)
    found = detect(options.root)
    facts = read_facts(options.root)
    profile_options = ProfileOptions(target=found.target, timeout_s=options.timeout_s, dims=options.dims, root=options.root,
                                     prompt_tokens=options.prompt_tokens, warmup=10)
    machine, meters = machine_of(profile_options, facts)
    if options.objective != "energy":
        meters = []  # the idle baseline each metered round needs would double the search: energy only when it is the goal
    else:
        _check_meter(meters, options.root)
    space_ = space(source, manifest, facts, sorted(_usable_cpus()))
    if not space_.candidates:
        raise EdgeError("no artifact of this bundle can be tuned here: "
                        + "; ".join(f"{s['artifact']}: {s['reason']}" for s in space_.skipped))
    state = tables.State.open(path, manifest, machine, found.target, options, space_)
    with tempfile.TemporaryDirectory(prefix="edge-tune-") as scratch:
        counter = iter(range(1 << 30))

        def one(trial: Trial, size: float) -> dict[str, Any]:
            from edge.core import schema

            # a language model's round is one generation of ``size`` tokens after the warm-up's: it holds
            # one time to first token and size - 1 decode steps
            if source.generation is not None:  # within the context left after the prompt
                tokens = max(2, min(int(size), int(source.generation["context"]) - options.prompt_tokens))
                sized = replace(profile_options, runs=tokens, new_tokens=tokens)
            else:
                sized = replace(profile_options, duration_s=size)
            result, _ = measure(space_.config(trial), sized, meters, source, Path(scratch) / f"{next(counter)}.json")
            return schema.to_dict(result)

        search = _Search(space_, options, state, one)
        finalists: list[Trial] = []
        stopped = None
        try:
            finalists = search.run()
        except OutOfTime:
            stopped = f"the time limit ({options.max_minutes:g} min) came first"
            finalists = survivors(state.trials(), search.rounds, options.objective, search.floor())
    choice = finalists[0] if finalists else None
    table = state.finish(choice, space_.default, stopped)
    notes = [stopped + ": the choice is the best of what was measured; run the same command to go on"] if stopped else []
    if choice is not None:
        tables.keep(path, manifest, state, choice, space_.default, found.target, machine, options.objective, stopped is None)
    return TuneOutcome(table, state.path, choice, space_.default, stopped is None, notes)


def _check_meter(meters: list[str], root: Path) -> None:
    from edge.device.meters import find

    meter, tried = find(meters, root)
    if meter is None:
        why = "; ".join(f"{name}: {reason}" for name, reason in tried.items()) or "this target lists no energy meter"
        raise UsageError(f"--objective energy needs an energy meter, and none is available here ({why})",
                         hint="tune for latency or memory, or run it on a device with a meter")
