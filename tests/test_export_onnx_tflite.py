"""ONNX files people bring, to TFLite and through validation: a YOLOv8-style detector whose
height and width are dynamic (folded at the --dim sizes), a stateful LSTM (Silero's voice-activity
detector), and a model that refuses random inputs (the hint names --sample-inputs and --input)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge

from conftest import ROOT, manifest_of

sys.path.insert(0, str(ROOT / "tests" / "coverage"))
import yolo  # noqa: E402  (tests/coverage/yolo.py: the detector as Ultralytics writes it)

TARGET = "x86-64-generic"


def _silero(name: str) -> Path:
    import silero_vad

    return Path(silero_vad.__file__).parent / "data" / name


def _by_name(manifest: dict) -> dict[str, dict]:
    return {a["name"]: a for a in manifest["artifacts"]}


@pytest.mark.slow
@pytest.mark.parametrize("opset", [17, 18])
def test_a_yolov8_detector_with_dynamic_height_and_width_becomes_a_validated_tflite(edge_cli, tmp_path, opset):
    import onnxruntime as ort

    source = yolo.export(tmp_path / "yolov8.onnx", opset=opset)
    out = tmp_path / "bundle"
    result = edge_cli("export", source, "-t", TARGET, "-o", out, "--dim", "height=320", "--dim", "width=256",
                      "--format", "tflite", "--variant", "tflite-fp32")
    assert result.code == 0, result
    manifest = manifest_of(out)
    arts = _by_name(manifest)
    assert arts["tflite-fp32"]["validation"]["passed"], arts["tflite-fp32"]["validation"]
    assert manifest["inputs"][0]["shape"] == ["batch", 3, "height", "width"]  # the ONNX artifact keeps them open
    assert arts["tflite-fp32"]["inputs"][0]["shape"] == [1, 320, 256, 3]  # the TFLite file: folded there, NHWC

    model = edge.load(out, target=TARGET, artifact="tflite-fp32")
    image = np.random.default_rng(1).random((1, 3, 320, 256), dtype=np.float32)
    boxes = model.run({"images": image})["output0"]
    anchors = sum((320 // s) * (256 // s) for s in (8, 16, 32))
    assert boxes.shape == (1, 84, anchors)
    expected = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"images": image})[0]
    assert np.abs(boxes - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())


@pytest.mark.slow
def test_the_silero_lstm_becomes_tflite_and_matches_onnxruntime(edge_cli, tmp_path):
    out = tmp_path / "vad"
    result = edge_cli("export", _silero("silero_vad_16k_op15.onnx"), "-t", TARGET, "-o", out,
                      "--input", "input:float32[1,512]:-1..1", "--input", "state:float32[2,1,128]:-1..1",
                      "--input", "sr:int64[]:16000..16000", "--format", "tflite", "--variant", "tflite-fp32")
    assert result.code == 0, result
    assert _by_name(manifest_of(out))["tflite-fp32"]["validation"]["passed"]
    model = edge.load(out, target=TARGET, artifact="tflite-fp32")
    state = np.zeros((2, 1, 128), np.float32)
    for step in range(3):  # carry the state as a caller would
        chunk = np.random.default_rng(step).uniform(-0.5, 0.5, (1, 512)).astype(np.float32)
        got = model.run({"input": chunk, "state": state, "sr": np.array(16000)})
        assert got["output"].shape == (1, 1) and 0 <= float(got["output"][0, 0]) <= 1
        state = got["stateN"]


def test_a_model_that_refuses_random_inputs_gets_a_hint_naming_sample_inputs_and_input(tmp_path):
    # in a process of its own: onnxruntime logs from C++ to the real stderr, which CliRunner does not see
    result = subprocess.run([sys.executable, "-m", "edge", "export", _silero("silero_vad.onnx"),
                             "-t", TARGET, "-o", tmp_path / "vad", "--format", "onnx"], capture_output=True, text=True)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and "onnxruntime:" not in result.stderr  # nor onnxruntime's own log
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert len(lines) == 2 and lines[0].startswith("error: the model refused the random inputs"), result.stderr
    assert "node '" in lines[0] and "[ONNXRuntimeError]" not in lines[0]  # the failing node, not ORT's prefix
    assert "--sample-inputs" in lines[1] and "--input 'sr:int64[]:LOW..HIGH'" in lines[1]
    assert not (tmp_path / "vad").exists()


def test_input_with_fixed_sizes_sets_the_validation_shape_of_an_onnx_source(edge_cli, tmp_path):
    out = tmp_path / "vad"
    result = edge_cli("export", _silero("silero_vad.onnx"), "-t", TARGET, "-o", out, "--format", "onnx",
                      "--variant", "fp32", "--input", "input:float32[1,512]:-1..1",
                      "--input", "state:float32[2,1,128]:-1..1", "--input", "sr:int64[]:16000..16000")
    assert result.code == 0, result
    manifest = manifest_of(out)
    assert manifest["artifacts"][0]["validation"]["passed"]
    assert {manifest["dims"][k] for k in manifest["dims"]} == {1, 512}  # the open axes, at the given sizes
    inputs = {s["name"]: s for s in manifest["inputs"]}
    assert inputs["sr"]["range"] == [16000, 16000]
    assert any(isinstance(d, str) for d in inputs["input"]["shape"])  # the ONNX artifact keeps its axes open


def test_input_sizes_that_contradict_dim_are_refused(edge_cli, tmp_path):
    result = edge_cli("export", _silero("silero_vad_16k_op15.onnx"), "-t", TARGET, "-o", tmp_path / "x",
                      "--format", "onnx", "--dim", "sequence=256", "--input", "input:float32[1,512]")
    assert result.code == 2 and "sets axis 1 ('sequence') to 512" in result.stderr, result
