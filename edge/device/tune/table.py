"""The tune table (``BUNDLE/tune/<target>.json``, schema ``edge.tune/1``): every measurement in the
order it was made, saved after each one, and the choice written into the manifest.

Resuming is a replay: the search runs again from the start and each measurement it asks for is
taken from the saved log while the log agrees (same trial at the same position); from the first
difference on, it measures. The log is kept only for the same machine class, the same artifacts,
the same edge version and the same objective (``identity``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core import schema
from edge.core.errors import UsageError, first_line
from edge.device.tune.race import Rounds, bound, dominated, median, noise, values
from edge.device.tune.space import Space, Trial

SCHEMA = "edge.tune/1"
FOLDER = "tune"


@dataclass
class State:
    path: Path
    identity: dict[str, Any]
    head: dict[str, Any]  # what the table says about the run: machine, target, objective, command...
    previous: list[dict[str, Any]]  # the saved log, replayed while it agrees
    notes: list[str] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    fusion_cache: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # trial key -> when and why the race dropped it
    _rounds: dict[str, Rounds] = field(default_factory=dict)
    _trials: dict[str, Trial] = field(default_factory=dict)
    replayed: int = 0

    @classmethod
    def open(cls, bundle: Path, manifest, machine, target: str, options, space_: Space) -> State:
        from edge import __version__

        path = Path(bundle) / FOLDER / f"{target}.json"
        identity = {"target": target, "cpu": machine.cpu, "cpus": machine.cores, "arch": machine.arch,
                    "edge": __version__, "objective": options.objective,
                    "artifacts": {a.name: a.sha256 for a in manifest.artifacts}, "dims": dict(sorted(options.dims.items())),
                    "prompt_tokens": options.prompt_tokens}
        import shlex

        command = ["edge", "tune", str(bundle), "--objective", options.objective, "--max-minutes", f"{options.max_minutes:g}"]
        command += [a for name, size in sorted(options.dims.items()) for a in ("--dim", f"{name}={size}")]
        head = {"bundle": Path(bundle).resolve().name, "target": target, "objective": options.objective,
                "command": shlex.join(command), "machine": schema.to_dict(machine), "max_minutes": options.max_minutes}
        state = cls(path, identity, head, [], skipped=space_.skipped)
        old = _read(path)
        if old is not None and not options.fresh:
            if old.get("identity") == identity:
                state.previous = old.get("log", [])
                state.fusion_cache = old.get("fusions", {})
            else:
                changed = sorted(k for k in identity if (old.get("identity") or {}).get(k) != identity[k])
                state.notes.append(f"earlier measurements in {path.name} were not reused: {', '.join(changed)} changed")
        state._check_writable()
        return state

    def _check_writable(self) -> None:
        try:
            self.path.parent.mkdir(exist_ok=True)
            probe = self.path.parent / ".edge-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"cannot write the tune table into the bundle: {first_line(exc)}",
                             hint="copy the bundle somewhere writable and tune the copy") from exc

    @property
    def measured(self) -> int:
        return len(self.log)

    def rounds(self, trial: Trial) -> Rounds:
        self._trials.setdefault(trial.key, trial)
        return self._rounds.setdefault(trial.key, Rounds())

    def measured_rounds(self, trial: Trial) -> Rounds:
        """The rounds of ``trial`` so far, without adding it to the table."""
        return self._rounds.get(trial.key, Rounds())

    def all_rounds(self) -> list[Rounds]:
        return list(self._rounds.values())

    def trials(self) -> list[Trial]:
        return list(self._trials.values())

    def has_stage(self, trial: Trial, stage: str) -> bool:
        return any(entry["key"] == trial.key and entry["stage"] == stage for entry in self.log)

    def replay(self, trial: Trial) -> dict[str, Any] | None:
        """The saved result of the next measurement, if the saved log asks for the same trial there."""
        position = len(self.log)
        if position < len(self.previous) and self.previous[position]["key"] == trial.key:
            return self.previous[position]
        self.previous = self.previous[:position]  # the search went another way from here on
        return None

    def add(self, trial: Trial, stage: str, result: dict[str, Any], seconds: float, replayed: bool = False) -> None:
        self.rounds(trial).results.append(result)
        self.log.append({"key": trial.key, "stage": stage, "seconds": round(seconds, 3), "result": result})
        self.replayed += replayed
        if not replayed:
            self.save(complete=False, stopped="interrupted: run the same command to go on")

    def fusions(self, trial: Trial, space_: Space) -> list[str]:
        """The fusions onnxruntime writes into ``trial``'s graph (asked once per artifact and level)."""
        if trial.runtime != "onnxruntime":
            return []
        key = f"{trial.artifact}|{trial.optimization}"
        if key not in self.fusion_cache:
            from edge.device.tune.space import fused

            self.fusion_cache[key] = fused(space_.candidates[trial.artifact].path, trial.optimization)
        return self.fusion_cache[key]

    def document(self, complete: bool, stopped: str | None, choice: Trial | None = None,
                 default: Trial | None = None) -> dict[str, Any]:
        from edge import __version__

        objective = self.identity["objective"]
        floor = noise(self.all_rounds(), objective)
        best = bound(self._rounds[choice.key], objective, floor) if choice is not None else None
        rows = pareto([_row(t, self._rounds[t.key], objective, best, choice, self.log, self.dropped.get(t.key), floor)
                       for t in self.trials()])
        return {"schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "edge_version": __version__, **self.head, "complete": complete, "stopped": stopped,
                "measurements": len(self.log), "replayed": self.replayed, "seconds": round(sum(e["seconds"] for e in self.log), 1),
                "choice": choice.key if choice else None, "default": default.key if default else None,
                "process_noise": round(floor, 4),
                "skipped": self.skipped, "notes": self.notes, "fusions": self.fusion_cache,
                "trials": rows, "identity": self.identity, "log": self.log}

    def save(self, complete: bool, stopped: str | None, choice: Trial | None = None, default: Trial | None = None) -> dict:
        from edge.core.files import write_atomic

        doc = self.document(complete, stopped, choice, default)
        write_atomic(self.path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode("utf-8"))
        return doc

    def finish(self, choice: Trial | None, default: Trial, stopped: str | None) -> dict[str, Any]:
        return self.save(stopped is None, stopped, choice, default)


def _row(trial: Trial, rounds: Rounds, objective: str, best, choice: Trial | None, log: list,
         dropped: str | None, floor: float) -> dict[str, Any]:
    mine = bound(rounds, objective, floor)
    if rounds.error:
        status = "failed"
    elif choice is not None and trial.key == choice.key:
        status = "chosen"
    elif dropped:
        status = "dropped"
    elif dominated(mine, best):
        status = "slower" if objective == "latency" else "worse"
    else:
        status = "within noise"
    good = [r for r in rounds.results if not r.get("error")]
    peaks, joules = values(rounds, "memory"), values(rounds, "energy")
    ttft = [r["generation"]["ttft_ms"]["p50"] for r in good if (r.get("generation") or {}).get("ttft_ms")]
    samples = rounds.samples()
    return {
        "key": trial.key, "label": trial.label, "artifact": trial.artifact, "runtime": trial.runtime,
        "threads": trial.threads, "cores": trial.cores, "optimization": trial.optimization,
        "knobs": schema.to_dict(trial.knobs), "settings": trial.settings_text(),
        "stage": next((e["stage"] for e in log if e["key"] == trial.key), None), "status": status,
        "dropped": dropped, "error": rounds.error,
        "rounds": len(rounds.results), "samples": len(samples),
        "objective": None if mine is None else {"value": mine.value, "low": mine.low, "high": mine.high, "unit": mine.unit},
        "p50_ms": _median_or_none(samples), "peak_mb": max(peaks) if peaks else None,
        "energy_j": _median_or_none(joules), "ttft_ms": _median_or_none(ttft),
        "runtime_version": next((r["runtime"]["version"] for r in good), None),
    }


PARETO_AXES = ("p50_ms", "peak_mb", "energy_j")


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the rows no other row beats on every measured axis (latency, peak memory, and energy
    where every row has it): the Pareto front ``edge report`` draws."""
    axes = [a for a in PARETO_AXES if all(r[a] is not None for r in rows if not r["error"])]
    ok = [r for r in rows if not r["error"] and all(r[a] is not None for a in axes)]
    for r in rows:
        r["pareto"] = r in ok and not any(
            all(o[a] <= r[a] for a in axes) and any(o[a] < r[a] for a in axes) for o in ok if o is not r)
    return rows


def _median_or_none(found: list[float]) -> float | None:
    return median(sorted(found)) if found else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no table yet, or a damaged one: start over
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def keep(bundle: Path, manifest, state: State, choice: Trial, default: Trial, target: str, machine, objective: str,
         complete: bool) -> None:
    """Write the choice into the manifest's ``tuned`` list (replacing an earlier one for ``target``)."""
    from edge.core.bundle import Tuned, write_manifest

    def figures(trial: Trial) -> dict[str, Any]:
        found = bound(state.measured_rounds(trial), objective, noise(state.all_rounds(), objective))
        return {"label": trial.label, "value": found.value, "low": found.low, "high": found.high,
                "unit": found.unit} if found else {"label": trial.label, "value": None}

    measured = {"choice": figures(choice), "default": figures(default)}
    tuned = Tuned(target, {"cpu": machine.cpu, "cpus": machine.cores, "arch": machine.arch},
                  datetime.now(timezone.utc).isoformat(timespec="seconds"), objective, choice.artifact, choice.runtime,
                  choice.threads, choice.cores, choice.optimization, choice.knobs, measured,
                  f"{FOLDER}/{state.path.name}", complete)
    manifest.tuned = [t for t in manifest.tuned if t.target != target] + [tuned]
    write_manifest(bundle, manifest)
