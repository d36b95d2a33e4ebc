"""The coverage suite (`make coverage`): every architecture in cases.py through `edge export` as a
user runs it (the installed command, in its own process), then every artifact it wrote through
`edge.load`. Each case writes its row of docs/coverage.md to build/coverage/ (or
$EDGE_COVERAGE_OUT); tests/coverage/table.py renders the table from those rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cases import CASES, ROOT, TFLITE_FILES, Case, TfliteFile, package_dir

pytestmark = [pytest.mark.slow, pytest.mark.coverage]
EDGE = [sys.executable, "-m", "edge"]  # the installed command, in its own process, whatever venv runs the tests
TARGET = "x86-64-generic"  # a profile with both formats; the bundles are run here with the target named
INTERNAL = 70  # edge's exit code for an internal error: never acceptable on a real architecture


def results_dir() -> Path:
    folder = Path(os.environ.get("EDGE_COVERAGE_OUT", ROOT / "build" / "coverage"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_architecture_exports_to_both_formats_or_says_why(case: Case, tmp_path: Path) -> None:
    source = case.make(tmp_path)
    out = tmp_path / "bundle"
    variants = [a for v in case.variants for a in ("--variant", v)]
    command = [*EDGE, "export", source, "-t", TARGET, "-o", str(out), "--no-strict", *variants, *case.args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    row = {"name": case.name, "family": case.family, "origin": case.origin, "exit": done.returncode,
           "seconds": round(time.monotonic() - started, 1), "args": list(case.args)}
    if done.returncode == 0:
        row.update(_bundle_row(out, case))
    else:
        row["error"] = _last_error(done.stderr)
    (results_dir() / f"{case.name}.json").write_text(json.dumps(row, indent=1) + "\n")

    assert done.returncode != INTERNAL, f"internal error on a real architecture:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, done.stderr[-3000:]
    assert row["onnx"]["ok"], row
    assert all(v == "ok" for v in row["load"].values()), row["load"]
    assert set(case.must_build) <= set(row["onnx"]["artifacts"] + row["tflite"]["artifacts"]), row
    if case.tflite == "ok":
        assert row["tflite"]["ok"], f"TFLite expected, got: {row['tflite']['reason']}"
    else:  # a known gap: it must say why, and say what cases.py says (update both when it changes)
        assert not row["tflite"]["ok"] and case.tflite in row["tflite"]["reason"], row["tflite"]


def _bundle_row(out: Path, case: Case) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    row = {}
    for fmt in ("onnx", "tflite"):
        built = [a for a in manifest["artifacts"] if a.get("format", "onnx") == fmt]
        fp32 = [a for a in built if a["precision"] == "fp32" and a["validation"].get("passed")]
        skipped = [f"{s['variant']}: {s['reason']}" for s in manifest.get("skipped", []) if s.get("format") == fmt
                   and not s["reason"].startswith("not applicable")]
        reason = next((n.split(": ", 1)[1] for n in manifest.get("notes", []) if n.startswith(f"no {_label(fmt)} artifacts")),
                      skipped[0] if skipped else "not built")
        row[fmt] = {"ok": bool(fp32), "artifacts": [a["name"] for a in built], "skipped": skipped,
                    "reason": "" if fp32 else reason,
                    "max_abs_diff": max((o["max_abs_diff"] for a in fp32 for o in a["validation"].get("outputs", {}).values()),
                                        default=None)}
    row["load"] = _through_edge_load(out, manifest, case)
    return row


def _label(fmt: str) -> str:
    return {"onnx": "ONNX", "tflite": "TFLite"}[fmt]


def _through_edge_load(out: Path, manifest: dict, case: Case) -> dict[str, str]:
    """Every artifact, loaded by name as a device would, run once on inputs of its shape."""
    import edge
    from edge.core.specs import DimSizes, random_inputs

    results = {}
    for artifact in manifest["artifacts"]:
        name = artifact["name"]
        try:
            model = edge.load(out, target=manifest["target"]["name"], artifact=name)
            if case.language_model:
                text = model.generate("The weather today", max_new_tokens=4)
                results[name] = "ok" if isinstance(text, str) else f"generate returned {type(text).__name__}"
                continue
            outputs = model.run(random_inputs(model.inputs, DimSizes(manifest.get("dims") or {}), 0))
            finite = all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in outputs.values())
            results[name] = "ok" if finite else "non-finite outputs"
        except Exception as exc:  # recorded in the table, then failed on by the test
            results[name] = f"{type(exc).__name__}: {exc}"[:200]
    return results


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "hint:"))]
    return " ".join(lines)[:400] or stderr.strip().splitlines()[-1][:400]


@pytest.mark.parametrize("file", TFLITE_FILES, ids=lambda f: f.name)
def test_a_bare_tflite_file_from_a_package_runs_through_edge_load(file: TfliteFile) -> None:
    import edge
    from edge.core.specs import DimSizes, random_inputs

    path = package_dir(file.package).joinpath(*file.path)
    row = {"name": file.name, "package": file.package, "sizes": file.sizes}
    try:
        model = edge.load(path)
        outputs = model.run(random_inputs(model.inputs, DimSizes({"batch": 1, **file.sizes}), 0))
        row.update(runtime=f"{model.choice.runtime} {model.choice.runtime_version}", result="ok",
                   inputs=[f"{s.name} {s.dtype}{list(s.shape)}" for s in model.inputs],
                   outputs={k: list(v.shape) for k, v in outputs.items()})
    except Exception as exc:  # recorded in the table, then failed on
        row["result"] = f"{type(exc).__name__}: {exc}"[:300]
    (results_dir() / f"file-{file.name}.json").write_text(json.dumps(row, indent=1) + "\n")
    assert row["result"] == "ok", row["result"]
