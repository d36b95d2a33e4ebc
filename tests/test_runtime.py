"""edge.load and Model.run: artifact choice, input checks, threads, bad bundles, TFLite files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edge
from edge.core.errors import InvalidModelError, MissingDependencyError

from conftest import ROOT, handmade_manifest, host_target, manifest_of


def _wakeword(name: str) -> Path:
    import pyopen_wakeword

    return Path(pyopen_wakeword.__file__).parent / "models" / name


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    """A private copy of the digits bundle, safe to damage."""
    return Path(shutil.copytree(digits_bundle, tmp_path / "digits"))


def test_load_picks_the_preferred_artifact_and_matches_onnxruntime(digits_bundle):
    model = edge.load(digits_bundle)
    m = manifest_of(digits_bundle)
    assert model.choice.artifact == m["preferred"][0] and model.choice.runtime == "onnxruntime"
    assert [s.name for s in model.inputs] == ["pixels"] and model.inputs[0].finite
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    path = digits_bundle / next(a["path"] for a in m["artifacts"] if a["name"] == model.choice.artifact)
    expected = ort.InferenceSession(str(path)).run(None, {"pixels": x})[0]
    assert np.array_equal(model.run({"pixels": x})["logits"], expected)
    assert np.array_equal(model.run(x)["logits"], expected)  # positional
    assert np.array_equal(model(pixels=x)["logits"], expected)  # keywords
    assert edge.load(digits_bundle, threads=1).choice.threads == 1


@pytest.mark.parametrize("feeds, message", [
    ({"pixel": np.zeros((1, 1, 8, 8), np.float32)}, "unknown pixel; missing pixels"),
    ({"pixels": np.zeros((1, 8, 8), np.float32)}, "expected 4 dimensions ['batch', 1, 8, 8], got shape [1, 8, 8]"),
    ({"pixels": np.zeros((1, 1, 8, 9), np.float32)}, "axis 3 must be 8"),
    ({"pixels": np.zeros((1, 1, 8, 8), np.float64)}, "expected dtype float32, got float64"),
    ({"pixels": np.full((1, 1, 8, 8), np.nan, np.float32)}, "holds NaN or infinity"),
])
def test_bad_inputs_name_the_input_and_what_was_expected(digits_bundle, feeds, message):
    model = edge.load(digits_bundle)
    with pytest.raises(edge.InputError) as exc:
        model.run(feeds)
    assert message in exc.value.message


def test_positional_count_and_lists(digits_bundle):
    model = edge.load(digits_bundle)
    with pytest.raises(edge.InputError, match="takes 1 input"):
        model.run(np.zeros((1, 1, 8, 8), np.float32), np.zeros(1))
    out = model.run({"pixels": np.zeros((1, 1, 8, 8)).tolist()})  # a list takes the declared dtype
    assert out["logits"].shape == (1, 10)


def test_concurrent_calls_give_the_same_answers(digits_bundle):
    model = edge.load(digits_bundle)
    rng = np.random.default_rng(1)
    inputs = [rng.random((2, 1, 8, 8), dtype=np.float32) for _ in range(8)]
    expected = [model.run(x)["logits"] for x in inputs]
    results: dict[int, list] = {}

    def worker(i: int) -> None:
        results[i] = [model.run(inputs[(i + k) % 8])["logits"] for k in range(50)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, outs in results.items():
        assert all(np.array_equal(o, expected[(i + k) % 8]) for k, o in enumerate(outs))


def test_sha256_mismatch(bundle):
    path = bundle / manifest_of(bundle)["preferred"][0].join(("model.", ".onnx"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModelError, match="does not match the sha256 in its manifest"):
        edge.load(bundle)


def test_corrupt_bundles(bundle):
    (bundle / "manifest.json").write_text("{broken")
    with pytest.raises(InvalidModelError, match="not valid JSON"):
        edge.load(bundle)
    (bundle / "manifest.json").unlink()
    with pytest.raises(InvalidModelError, match="has no manifest.json"):
        edge.load(bundle)


def test_missing_artifact_file(bundle):
    for a in manifest_of(bundle)["artifacts"]:
        (bundle / a["path"]).unlink()
    with pytest.raises(InvalidModelError, match="which is missing"):
        edge.load(bundle)


def test_bundle_for_another_architecture(bundle):
    import platform

    here = platform.machine()
    other, arch = ("x86-avx512", "x86_64") if here in ("aarch64", "arm64") else ("rpi5", "aarch64")
    m = manifest_of(bundle)
    m["target"]["arch"], m["target"]["name"] = arch, other
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InvalidModelError) as exc:
        edge.load(bundle)
    assert f"built for {other} ({arch}); this machine is {here}" in exc.value.message
    assert f"target='{other}'" in exc.value.hint
    assert edge.load(bundle, target=other).run(np.zeros((1, 1, 8, 8), np.float32))["logits"].shape == (1, 10)


def test_failed_artifacts_are_never_chosen(bundle):
    m = manifest_of(bundle)
    for a in m["artifacts"][1:]:
        a["gate"]["passed"] = False
    (bundle / "manifest.json").write_text(json.dumps(m))
    assert edge.load(bundle).choice.artifact == "fp32"


def test_runtime_that_is_not_installed_gives_the_pip_line(digits_bundle):
    with pytest.raises(MissingDependencyError) as exc:
        edge.load(_wakeword("hey_jarvis.tflite"), runtime="tflite-runtime")
    assert exc.value.hint == "pip install tflite-runtime 'numpy<2'"
    with pytest.raises(edge.EdgeError, match="litert cannot run"):
        edge.load(digits_bundle, runtime="litert")  # the bundle has no TFLite artifact


def test_bare_onnx_and_tflite_files(digits_bundle):
    onnx_model = edge.load(digits_bundle / "model.fp32.onnx")
    assert onnx_model.choice.runtime == "onnxruntime" and onnx_model.inputs[0].shape == ("batch", 1, 8, 8)
    # A real TFLite model shipped by pyopen-wakeword, in the LiteRT interpreter.
    model = edge.load(_wakeword("embedding_model.tflite"))
    assert model.choice.runtime == "litert"
    (spec,) = model.inputs
    assert spec.shape == ("batch", 76, 32, 1) and spec.dtype == "float32"  # the model's batch is dynamic
    x = np.random.default_rng(0).random((1, 76, 32, 1), dtype=np.float32)
    (out,) = model.run(x).values()
    assert out.shape == (1, 1, 1, 96) and np.isfinite(out).all()
    with pytest.raises(edge.InputError, match="expected shape"):
        model.run(np.zeros((1, 76, 32, 2), np.float32))


@pytest.mark.export
def test_layout_adaptation_declared_in_the_manifest(tmp_path):
    """A model that wants NHWC, fed NCHW because the manifest says so."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, str(tmp_path / "nhwc.onnx"))
    result = subprocess.run([sys.executable, "-m", "edge", "export", str(tmp_path / "nhwc.onnx"), "-t", host_target(),
                             "-o", str(tmp_path / "b"), "--variant", "fp32"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    m = manifest_of(tmp_path / "b")
    m["inputs"][0]["layout"] = "NCHW"
    m["inputs"][0]["shape"] = ["batch", 3, 4, 4]
    m["artifacts"][0]["layouts"] = {"x": "NHWC"}
    (tmp_path / "b/manifest.json").write_text(json.dumps(m))
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    y = edge.load(tmp_path / "b").run({"x": x})["y"]
    assert np.array_equal(y, x.transpose(0, 2, 3, 1))


def test_run_command(edge_cli, digits_bundle, tmp_path):
    result = edge_cli("run", digits_bundle, "--input", ROOT / "examples/digits/images/2_000.png", "--save", tmp_path / "o.npz")
    assert result.code == 0, result
    assert "logits: float32 [1, 10]" in result.stdout and "[0] top: 2" in result.stdout
    assert np.load(tmp_path / "o.npz")["logits"].argmax() == 2
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    assert "logits: float32 [2, 10]" in edge_cli("run", digits_bundle, "--input", tmp_path / "x.npy").stdout
    result = edge_cli("run", digits_bundle, "--text", "hello")
    assert result.code == 2 and "carries no tokenizer" in result.stderr
    result = edge_cli("run", digits_bundle, "--input", tmp_path / "nope.npz")
    assert result.code == 3


def test_runtime_imports_stay_small(digits_bundle):
    code = (
        "import sys, numpy as np, edge\n"
        f"m = edge.load({str(digits_bundle)!r})\n"
        "m.run(np.zeros((1, 1, 8, 8), np.float32))\n"
        "heavy = sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'onnx', 'transformers', 'onnxslim', 'ai_edge_litert'})\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_public_surface_has_docstrings():
    for name in edge.__all__:
        obj = getattr(edge, name)
        if callable(obj):
            assert obj.__doc__, name
    assert ">>>" in edge.load.__doc__ and ">>>" in edge.Model.run.__doc__


def _tflite_bundle(tmp_path: Path, ops: list[list] | None = None) -> Path:
    """A bundle around a real TFLite model (pyopen-wakeword's hey_jarvis), its ops read from the file."""
    from edge.core.bundle import Artifact, sha256_file, write_manifest
    from edge.device.runtime.tflite_ops import read_ops

    folder = tmp_path / "wake"
    folder.mkdir()
    shutil.copyfile(_wakeword("hey_jarvis.tflite"), folder / "model.fp32.tflite")
    found = read_ops(folder / "model.fp32.tflite")
    artifact = Artifact("fp32", "tflite", "model.fp32.tflite", (folder / "model.fp32.tflite").stat().st_size,
                        sha256_file(folder / "model.fp32.tflite"), "fp32", validation={"passed": True}, ops=ops or found)
    manifest = handmade_manifest([artifact], [{"name": "x.1", "dtype": "float32", "shape": [1, 16, 96]}],
                                 [{"name": "53", "dtype": "float32", "shape": [1, 1]}], ["litert", "tflite-runtime"])
    write_manifest(folder, manifest)
    return folder


def test_tflite_bundle_runs_in_litert_with_its_ops_recorded(tmp_path):
    from edge.device.runtime.tflite_ops import read_ops

    ops = read_ops(_wakeword("hey_jarvis.tflite"))
    assert ["FULLY_CONNECTED", 1] in ops and ["LOGISTIC", 1] in ops
    model = edge.load(_tflite_bundle(tmp_path))
    assert model.choice.runtime == "litert" and model.choice.threads == 1
    (score,) = model.run(np.zeros((1, 16, 96), np.float32)).values()
    assert score.shape == (1, 1) and 0 <= score.item() <= 1


def test_ops_too_new_for_an_older_interpreter_are_refused_before_loading(tmp_path):
    bundle = _tflite_bundle(tmp_path, ops=[["FULLY_CONNECTED", 12], ["GATHER_ND", 5]])
    with pytest.raises(edge.EdgeError) as exc:
        edge.load(bundle, runtime="tflite-runtime")
    assert "tflite-runtime cannot run FULLY_CONNECTED v12, GATHER_ND v5" in exc.value.message
    assert edge.load(bundle).choice.runtime == "litert"  # LiteRT has no such limit


def test_a_tflite_file_whose_input_length_is_open_loads_and_runs_at_the_length_fed():
    # pyopen-wakeword's audio front end does not prepare at its placeholder length (XNNPACK and the
    # built-in Conv both refuse it): the interpreter allocates at the first run's length instead
    model = edge.load(_wakeword("melspectrogram.tflite"))
    assert isinstance(model.inputs[0].shape[1], str)
    for samples, frames in ((1280, 5), (1920, 9)):  # 80 and 120 ms of 16 kHz audio
        out = model.run({"input": np.zeros((1, samples), np.float32)})["output"]
        assert out.shape == (1, 1, frames, 32) and np.isfinite(out).all()
