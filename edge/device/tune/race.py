"""Racing configurations: measure in short rounds, drop what is clearly worse, measure the rest longer.

Each round of a trial is one fresh measuring process (the profiler's), so the noise a bound
must cover is both within a run and between processes. A trial's bound on its objective:

- latency: the 95 % confidence interval of the median of all its samples (order statistics:
  ranks n/2 +- 0.98 sqrt(n)), widened to the spread of its rounds' medians, and to at least
  +- the machine's process noise;
- memory: the peak resident set of its rounds, +- max(1 MB, the process noise);
- energy: the rounds' energy per inference, +- max(their spread, the process noise).

The process noise is measured, not assumed: the largest relative spread between fresh processes
of one configuration seen so far in the search (the search measures the profile's default twice
before anything else), and at least ``FLOOR`` (``ENERGY_FLOOR`` for energy).

A trial is dominated once its lower bound is above the best trial's upper bound: it is not
measured again. Trials still overlapping after the last round are ties; the lowest value wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FLOOR = 0.03
ENERGY_FLOOR = 0.05
OBJECTIVES = ("latency", "memory", "energy")


@dataclass
class Rounds:
    """What was measured of one trial: one ConfigResult (as JSON) per round."""

    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        failed = [r["error"] for r in self.results if r.get("error")]
        return failed[0] if failed else None

    def samples(self) -> list[float]:
        """Per-run latency in ms (language models: per decoded token) over every round."""
        return [s for r in self.results if not r.get("error") for s in r["latency_ms"]["samples"]]


@dataclass(frozen=True)
class Bound:
    value: float
    low: float
    high: float
    unit: str


def values(rounds: Rounds, objective: str) -> list[float]:
    """One figure per round that measured it: latency p50, peak memory, or energy per inference."""
    good = [r for r in rounds.results if not r.get("error")]
    if objective == "latency":
        return [r["latency_ms"]["p50"] for r in good]
    if objective == "memory":
        return [r["memory_mb"]["peak"] for r in good if (r.get("memory_mb") or {}).get("peak") is not None]
    return [r["energy"]["per_inference_j"] for r in good if (r.get("energy") or {}).get("available")]


def noise(everything: list[Rounds], objective: str) -> float:
    """The machine's process noise: the largest relative spread between the rounds of one trial."""
    spreads = [FLOOR if objective != "energy" else ENERGY_FLOOR]
    for rounds in everything:
        found = values(rounds, objective)
        if len(found) >= 2 and min(found) > 0:
            spreads.append((max(found) - min(found)) / median(sorted(found)))
    return max(spreads)


def bound(rounds: Rounds, objective: str, floor: float = FLOOR) -> Bound | None:
    """The trial's objective with its noise bound (``floor``: the process noise, relative); None
    when it has no usable measurement."""
    found = values(rounds, objective)
    if not found:
        return None
    if objective == "latency":
        samples = sorted(rounds.samples())
        n = len(samples)
        middle = median(samples)
        half = 0.98 * math.sqrt(n)
        low = samples[max(0, math.floor(n / 2 - half))]
        high = samples[min(n - 1, math.ceil(n / 2 + half))]
        return Bound(middle, min(low, *found, middle * (1 - floor)), max(high, *found, middle * (1 + floor)), "ms")
    value = median(sorted(found))
    margin = max(1.0, value * floor) if objective == "memory" else value * floor
    return Bound(value, min(min(found), value - margin), max(max(found), value + margin),
                 "MB" if objective == "memory" else "J")


def median(values: list[float]) -> float:
    """The median of sorted ``values``."""
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def dominated(mine: Bound | None, best: Bound | None) -> bool:
    """Clearly worse than ``best``: the whole of my bound lies above the whole of its bound."""
    return mine is None or (best is not None and mine.low > best.high)


class OutOfTime(Exception):
    """The time limit came before the next measurement."""


def race(trials: list, rounds_of, measure, objective: str, schedule: tuple, on_drop=None, floor_of=None) -> list:
    """Measure ``trials`` round by round (``schedule``: the size of each round), dropping the
    dominated after each; returns the survivors, best first. ``rounds_of(trial)`` gives the
    trial's Rounds (earlier stages' rounds count), ``measure(trial, round_index, size)`` adds one;
    ``on_drop(trial, best, round_index)`` hears of each trial dropped; ``floor_of()`` gives the
    process noise at that moment."""
    alive = unique(trials)
    for index, size in enumerate(schedule):
        for trial in alive:
            if len(rounds_of(trial).results) <= index:
                measure(trial, index, size)
        kept = survivors(alive, rounds_of, objective, floor_of() if floor_of else FLOOR)
        if on_drop is not None:
            for trial in alive:
                if trial not in kept:
                    on_drop(trial, kept[0] if kept else None, index)
        alive = kept
        if len(alive) <= 1:
            break
    return alive


def survivors(trials: list, rounds_of, objective: str, floor: float = FLOOR) -> list:
    """The trials no other one dominates, best first; failed ones are dropped."""
    bounds = {id(t): bound(rounds_of(t), objective, floor) for t in trials}
    measured = [t for t in trials if bounds[id(t)] is not None]
    if not measured:
        return []
    best = min(measured, key=lambda t: bounds[id(t)].value)
    kept = [t for t in measured if not dominated(bounds[id(t)], bounds[id(best)])]
    return sorted(kept, key=lambda t: bounds[id(t)].value)


def unique(trials: list) -> list:
    """``trials`` without repeats (by key), in order."""
    seen, out = set(), []
    for trial in trials:
        if trial.key not in seen:
            seen.add(trial.key)
            out.append(trial)
    return out
