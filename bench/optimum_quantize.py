"""Apply an optimum ONNX Runtime dynamic-quantization preset to a bare fp32 ONNX file.

Runs in .venv-optimum (optimum-onnx pins transformers<4.58, so it cannot share .venv);
the benchmark calls it as a subprocess and measures the result in the main environment.

Usage: python optimum_quantize.py IN.onnx OUT_DIR PRESET
  PRESET: avx512_vnni | arm64 | avx2 | avx512
Prints one JSON object on stdout; optimum/ORT logging goes to stderr.

Works offline (HF_HUB_OFFLINE=1 is forced) and on a model in a read-only
directory: the .onnx (plus any external-data files) is symlinked into a private
temp dir so that ORTQuantizer finds no stray config.json / tokenizer files next
to it (it would otherwise try AutoConfig/AutoTokenizer on the model's folder and
copy whatever it finds into OUT_DIR).
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

PRESETS = ("avx512_vnni", "arm64", "avx2", "avx512")


def _versions():
    out = {}
    for pkg in ("optimum", "optimum-onnx", "onnxruntime", "onnx", "transformers", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _enum(v):
    return getattr(v, "name", v)


def _config_dict(q):
    return {
        "format": _enum(q.format),
        "mode": _enum(q.mode),
        "is_static": q.is_static,
        "activations_dtype": _enum(q.activations_dtype),
        "activations_symmetric": q.activations_symmetric,
        "weights_dtype": _enum(q.weights_dtype),
        "weights_symmetric": q.weights_symmetric,
        "per_channel": q.per_channel,
        "reduce_range": q.reduce_range,
        "operators_to_quantize": [_enum(o) if not isinstance(o, str) else o for o in q.operators_to_quantize],
        "nodes_to_quantize": list(q.nodes_to_quantize or []),
        "nodes_to_exclude": list(q.nodes_to_exclude or []),
    }


def _external_data_files(model_path: Path):
    """Relative locations of external-data files referenced by the model (usually none)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    m = onnx.load(str(model_path), load_external_data=False)
    locs = set()
    for t in _get_all_tensors(m):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for e in t.external_data:
                if e.key == "location":
                    locs.add(e.value)
    return sorted(locs)


def make_config(preset: str):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=False)


def quantize(in_path: str, out_dir: str, preset: str) -> dict:
    from optimum.onnxruntime import ORTQuantizer

    src = Path(in_path).resolve()
    if not src.is_file():
        raise SystemExit(f"no such file: {src}")
    out = Path(out_dir).resolve()
    qconfig = make_config(preset)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="optq_") as tmp:
        tmp = Path(tmp)
        # optimum names the output save_dir/Path(f"{stem}_quantized").with_suffix(".onnx"): with a
        # dotted name (model.fp32.onnx) with_suffix eats ".fp32_quantized" and yields "model.onnx".
        # Link the model under a dot-free name so the output is "<name>_quantized.onnx".
        link_name = src.stem.replace(".", "_") + ".onnx"
        (tmp / link_name).symlink_to(src)
        for loc in _external_data_files(src):
            dst = tmp / loc
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src.parent / loc)
        quantizer = ORTQuantizer.from_pretrained(tmp, file_name=link_name)
        # With no config.json, transformers' AutoConfig "matches" a model_type from a substring of the
        # directory path (/tmp/optq_x -> OPT, /tmp/emptyx -> MPT) and optimum would save that bogus
        # config.json into OUT_DIR. We have no real config: drop it.
        quantizer.config = None
        quantizer.quantize(save_dir=out, quantization_config=qconfig)
    seconds = time.perf_counter() - t0
    # quantize() returns save_dir, not the file: the model is <stem>_quantized.onnx
    q_path = out / f"{Path(link_name).stem}_quantized.onnx"
    if not q_path.is_file():
        raise SystemExit(f"expected quantized model at {q_path}, not found")
    return {
        "preset": preset,
        "in": str(src),
        "out": str(q_path),
        "out_bytes": q_path.stat().st_size,
        "config": _config_dict(qconfig),
        "versions": _versions(),
        "seconds": round(seconds, 3),
    }


def main(argv):
    if len(argv) != 4 or argv[3] not in PRESETS:
        print(__doc__, file=sys.stderr)
        return 2
    # keep stdout clean for the JSON: route any library prints to stderr
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        result = quantize(argv[1], argv[2], argv[3])
    finally:
        sys.stdout = real_stdout
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
