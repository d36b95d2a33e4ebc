"""Quantized variants from the profile, checked by the accuracy gate and repaired where int8 breaks."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

from conftest import DIGITS, ROOT, host_target, manifest_of

OUTLIER_MODEL = """
    import torch

    class Outliers(torch.nn.Module):
        '''An MLP whose hidden layer has one channel 1000x larger than the rest, as in the
        outlier features of large transformers: per-tensor int8 of that activation keeps
        the outlier and rounds every other channel away.'''

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = torch.nn.Linear(16, 64)
            scale = torch.ones(64)
            scale[0] = 1000.0
            self.register_buffer("scale", scale)
            self.head = torch.nn.Linear(64, 8)
            with torch.no_grad():
                self.head.weight[:, 0] *= 1e-3  # the outlier carries little of the answer

        def forward(self, x):
            return self.head(torch.relu(self.embed(x)) * self.scale)

    def create():
        return Outliers(), ["x:float32[batch,16]:-3..3"], ["y"]
    """


def _digits_npz(tmp_path):
    sys.path.insert(0, str(ROOT / "examples/digits"))
    try:
        from train import data
    finally:
        sys.path.pop(0)
    x_train, x_test, _, y_test = data()
    np.savez(tmp_path / "calib.npz", pixels=x_train[:200])
    np.savez(tmp_path / "eval.npz", pixels=x_test, labels=y_test)
    return tmp_path / "calib.npz", tmp_path / "eval.npz", x_test, y_test


def test_digits_int8_on_real_data(edge_cli, tmp_path):
    calib, held_out, x_test, y_test = _digits_npz(tmp_path)
    out = tmp_path / "b"
    result = edge_cli("export", DIGITS, "-t", "x86-avx512", "-o", out, "--calib-data", calib, "--eval-data", held_out)
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["evaluation"]["kind"] == "classifier"
    assert m["evaluation"]["data"] == {"origin": "eval.npz: 450 samples with labels", "samples": 450, "labels": True}
    assert m["evaluation"]["calibration"]["samples"] == 200
    assert not any("synthetic" in n for n in m["notes"])
    by_name = {a["name"]: a for a in m["artifacts"]}
    assert set(by_name) == {"fp32", "int8", "int8-static", "tflite-fp32", "tflite-fp16", "tflite-int8", "tflite-int8-static"}
    for name in ("tflite-fp16", "tflite-int8", "tflite-int8-static"):  # the same gate, in LiteRT
        assert by_name[name]["gate"]["passed"] and by_name[name]["gate"]["metrics"]["top1_drop"] <= 1.0, name
    if host_target() == "x86-avx512":  # a machine of the target's class: every latency is measured, LiteRT's in LiteRT
        assert all(a["latency"] for a in m["artifacts"]) and by_name["tflite-fp32"]["latency"]["runtime"].startswith("litert")
    else:  # elsewhere no latency is recorded, and the manifest says why
        assert not any(a["latency"] for a in m["artifacts"]) and any("latency not recorded" in n for n in m["notes"])
    static = by_name["int8-static"]
    assert static["gate"]["passed"] and static["gate"]["metrics"]["reference_accuracy"] > 95
    assert static["gate"]["metrics"]["top1_drop"] <= 1.0
    assert static["build"]["quantization"]["mode"] == "static QDQ"
    assert "calibrated (minmax) on calib.npz" in static["build"]["quantization"]["activations"]
    assert static["size"] < by_name["fp32"]["size"] / 2
    # The artifact really classifies the test set as the gate says.
    session = ort.InferenceSession(str(out / static["path"]))
    accuracy = (session.run(None, {"pixels": x_test})[0].argmax(1) == y_test).mean() * 100
    assert abs(accuracy - static["gate"]["metrics"]["accuracy"]) < 1e-9
    assert set(m["preferred"]) == set(by_name)


def test_digits_from_image_folders(edge_cli, tmp_path):
    from PIL import Image

    _, _, x_test, y_test = _digits_npz(tmp_path)
    for i, (image, label) in enumerate(zip(x_test[:120], y_test[:120])):
        folder = tmp_path / "images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image[0] * 255, 0, 255).round().astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "b"
    result = edge_cli("export", DIGITS, "-t", "rpi5", "-o", out, "--calib-data", tmp_path / "images",
                      "--preprocess", "scale=1/255", "--variant", "int8-static")
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["evaluation"]["data"]["origin"] == "images/: 120 images in 10 labelled folders"
    assert m["evaluation"]["data"]["note"] == "no --eval-data: evaluated on the calibration data"
    gate = next(a for a in m["artifacts"] if a["name"] == "int8-static")["gate"]
    assert gate["passed"] and gate["metrics"]["reference_accuracy"] > 95
    assert "s8 per tensor" in m["artifacts"][1]["build"]["quantization"]["activations"]  # the ARM recipe


def _outlier_data(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.uniform(-3, 3, (64, 16)).astype(np.float32))
    path = tmp_path / "outliers.py"
    path.write_text(textwrap.dedent(OUTLIER_MODEL))
    return f"{path}:create", tmp_path / "data.npz"


def test_gate_catches_broken_int8_and_repair_fixes_it(edge_cli, tmp_path):
    spec, data = _outlier_data(tmp_path)
    out = tmp_path / "b"
    # this machine's own target: an artifact is validated here, and another x86 class's int8 recipe
    # (no reduce_range, for VNNI) saturates on a CPU without VNNI
    result = edge_cli("export", spec, "-t", host_target(), "-o", out, "--variant", "int8", "--gate-kind", "generic",
                      "--calib-data", data, "--eval-data", data)
    assert result.code == 0, result
    m = manifest_of(out)
    gate = next(a for a in m["artifacts"] if a["name"] == "int8")["gate"]
    first, *later = gate["steps"]
    assert not first["gate"]["passed"]  # plain int8 is broken: the gate says so
    assert first["gate"]["metrics"]["outputs"]["y"]["snr_db"] < 20
    assert gate["passed"] and later and later[-1]["gate"]["passed"]
    assert len(gate["kept_in_float"]) == 1 and gate["ranking"][0]["layer"] == gate["kept_in_float"][0]
    assert gate["quantized_layers"] == 1  # of the two Linear layers, the first stays int8
    assert "repair step 1: keeping" in result.stderr
    # The repaired artifact is as close to fp32 as the gate recorded.
    x = np.load(data)["x"]
    fp32 = ort.InferenceSession(str(out / "model.fp32.onnx")).run(None, {"x": x})[0]
    int8 = ort.InferenceSession(str(out / "model.int8.onnx")).run(None, {"x": x})[0]
    cos = float((fp32 * int8).sum() / np.linalg.norm(fp32) / np.linalg.norm(int8))
    assert cos > 0.99


def test_budget_that_cannot_be_met(edge_cli, tmp_path):
    spec, data = _outlier_data(tmp_path)
    args = ("export", spec, "-t", "x86-avx512", "-o", tmp_path / "b", "--variant", "int8", "--gate-kind", "generic",
            "--calib-data", data, "--eval-data", data, "--min-snr", "200")
    result = edge_cli(*args)
    assert result.code == 7, result
    assert "variant 'int8' missed its accuracy budget" in result.stderr and "layer(s) kept in float" in result.stderr
    assert "--no-strict" in result.stderr and not (tmp_path / "b").exists()
    result = edge_cli(*args, "--no-strict")
    assert result.code == 0, result
    m = manifest_of(tmp_path / "b")
    assert [a["name"] for a in m["artifacts"]] == ["fp32"]  # only the float artifact is kept
    (left_out,) = [s for s in m["skipped"] if s["variant"] == "int8"]
    assert "missed its accuracy budget" in left_out["reason"] and len(left_out["gate"]["steps"]) > 1


def test_synthetic_fallback_is_loud(edge_cli, tmp_path):
    result = edge_cli("export", DIGITS, "-t", "x86-avx512", "-o", tmp_path / "b", "--variant", "int8-static")
    assert result.code == 0, result
    m = manifest_of(tmp_path / "b")
    assert m["evaluation"]["kind"] == "generic"  # top-1 on random inputs would mean nothing
    assert "only a numerical comparison" in m["evaluation"]["data"]["warning"]
    assert any("synthetic" in n for n in m["notes"])
    assert "only a numerical comparison" in " ".join(result.stdout.split())


def test_fp16_variant_from_a_custom_profile(edge_cli, tmp_path):
    profile = tmp_path / "half.toml"
    profile.write_text('extends = "x86-avx512"\n[[variants]]\nname = "fp32"\n[[variants]]\nname = "half"\nprecision = "fp16"\n')
    result = edge_cli("export", DIGITS, "-t", "x86-avx512", "--profile", profile, "-o", tmp_path / "b")
    assert result.code == 0, result
    half = manifest_of(tmp_path / "b")["artifacts"][1]
    assert half["precision"] == "fp16" and half["gate"]["passed"]


@pytest.mark.parametrize("arrays, message", [
    ({"pixels": np.zeros((4, 8, 8), np.float32)}, "input 'pixels' has shape [4, 8, 8], expected ['batch', 1, 8, 8]"),
    ({"pixels": np.zeros((4, 1, 8, 8), np.float64)}, "input 'pixels' is float64, expected float32"),
    ({"image": np.zeros((4, 1, 8, 8), np.float32)}, "no array for input(s) pixels"),
])
def test_calibration_data_that_does_not_fit(edge_cli, tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    result = edge_cli("export", DIGITS, "-t", "rpi4", "-o", tmp_path / "b", "--calib-data", tmp_path / "bad.npz")
    assert result.code == 2, result
    assert message in result.stderr and not (tmp_path / "b").exists()


def test_empty_data_folder_and_text_without_tokenizer(edge_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = edge_cli("export", DIGITS, "-t", "rpi4", "-o", tmp_path / "b", "--calib-data", tmp_path / "empty")
    assert result.code == 2 and "holds no images" in result.stderr
    (tmp_path / "s.txt").write_text("a sentence\n")
    result = edge_cli("export", DIGITS, "-t", "rpi4", "-o", tmp_path / "b", "--eval-data", tmp_path / "s.txt")
    assert result.code == 2 and "need a tokenizer" in result.stderr


def test_unknown_recipe_in_a_profile(edge_cli, tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('extends = "rpi5"\n[[variants]]\nname = "q4"\nprecision = "int4"\n')
    result = edge_cli("export", DIGITS, "-t", "rpi5", "--profile", profile, "-o", tmp_path / "b")
    assert result.code == 5, result
    assert "variants[0].precision' must be one of 'fp32', 'fp16', 'int8-dynamic', 'int8-static'" in result.stderr
    result = edge_cli("export", DIGITS, "-t", "rpi5", "-o", tmp_path / "b", "--variant", "int4")
    assert result.code == 2 and "has no variant int4" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("target", ["rpi5"])
def test_minilm_int8_passes_its_gate_on_real_sentences(edge_cli, minilm_dir, tmp_path, target):
    sentences = ROOT / "examples/minilm"
    out = tmp_path / "minilm"
    result = edge_cli("export", minilm_dir, "-t", target, "-o", out, "--calib-data", sentences / "calib.txt",
                      "--eval-data", sentences / "eval.txt", "--dim", "sequence=128")
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["evaluation"]["kind"] == "embedding"
    assert m["evaluation"]["data"]["origin"] == "eval.txt: 200 sentences, padded to 128 tokens"
    int8 = next(a for a in m["artifacts"] if a["name"] == "int8")
    assert int8["gate"]["passed"] and int8["gate"]["metrics"]["min_cosine"] >= 0.99
    assert int8["size"] < m["artifacts"][0]["size"]
