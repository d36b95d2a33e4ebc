"""`edge export` of existing .onnx files: checked, cleaned, re-validated; bad files refused clearly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from conftest import manifest_of


def _text_like_image() -> np.ndarray:
    """Dark glyph-like blocks and a striped line on white, normalised the way PP-OCR expects."""
    img = np.ones((1, 3, 64, 160), np.float32)
    for i in range(4):
        img[:, :, 20:44, 10 + 35 * i : 35 + 35 * i] = -1.0
    img[:, :, 28:36, :] = np.where(np.arange(160) % 6 < 3, -1.0, 1.0)
    return img


def test_ppocr_detector_exports_and_validates(edge_cli, ocr_det, tmp_path):
    np.savez(tmp_path / "page.npz", x=_text_like_image())
    out = tmp_path / "ocr"
    result = edge_cli("export", ocr_det, "-t", "rpi5", "-o", out, "--sample-inputs", tmp_path / "page.npz")
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["source"]["kind"] == "onnx" and m["source"]["opset"] == 12
    assert m["inputs"][0]["name"] == "x" and m["inputs"][0]["shape"][1] == 3
    assert all(isinstance(d, str) for d in m["inputs"][0]["shape"][::2])  # batch and height stay dynamic
    art = m["artifacts"][0]
    simplify = art["build"]["simplify"]
    assert simplify["applied"] and simplify["nodes_after"] < simplify["nodes_before"]
    (name, out_report), = art["validation"]["outputs"].items()
    assert art["validation"]["passed"] and out_report["cosine"] > 0.9999  # the map has real detections
    assert art["validation"]["reference"].startswith("onnxruntime")
    # rpi5's profile also asks for TFLite: onnx2torch + litert-torch, at the page's own shape
    arts = {a["name"]: a for a in m["artifacts"]}
    tfl = arts["tflite-fp32"]
    assert tfl["build"]["converter"] == "onnx2torch + litert-torch"
    assert tfl["inputs"][0]["shape"] == [1, 64, 160, 3] and tfl["layouts"] == {"x": "NHWC"}
    (report,) = tfl["validation"]["outputs"].values()
    assert tfl["validation"]["passed"] and tfl["validation"]["runtime"].startswith("LiteRT")
    assert report["max_abs_diff"] < 1e-4


def test_random_inputs_also_validate(edge_cli, ocr_det, tmp_path):
    result = edge_cli("export", ocr_det, "-t", "x86-avx512", "-o", tmp_path / "ocr", "--no-simplify", "--variant", "fp32")
    assert result.code == 0, result
    art = manifest_of(tmp_path / "ocr")["artifacts"][0]
    assert art["build"]["simplify"] == {"applied": False, "reason": "--no-simplify"}
    assert art["validation"]["samples"] == 3


def _digits_onnx(tmp_path, digits_bundle):
    return onnx.load(str(digits_bundle / "model.fp32.onnx"))


def test_truncated_and_corrupt_onnx(edge_cli, tmp_path, digits_bundle):
    data = (digits_bundle / "model.fp32.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 3])
    result = edge_cli("export", tmp_path / "cut.onnx", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 4, result
    assert "cut.onnx is not a readable ONNX model" in result.stderr
    (tmp_path / "junk.onnx").write_text("this is not a model")
    result = edge_cli("export", tmp_path / "junk.onnx", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 4 and "junk.onnx is not a readable ONNX model" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()


def test_missing_onnx_file(edge_cli, tmp_path):
    result = edge_cli("export", tmp_path / "gone.onnx", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 3 and "no such file" in result.stderr


def test_external_data(edge_cli, tmp_path, digits_bundle):
    model = _digits_onnx(tmp_path, digits_bundle)
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    result = edge_cli("export", tmp_path / "ext.onnx", "-t", "rpi4", "-o", tmp_path / "ok", "--variant", "fp32")
    assert result.code == 0, result
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["manifest.json", "model.fp32.onnx"]  # folded in
    (tmp_path / "ext.onnx.data").unlink()
    result = edge_cli("export", tmp_path / "ext.onnx", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 4, result
    assert "keeps its weights in 'ext.onnx.data', which is not beside it" in result.stderr


def test_model_the_checker_rejects(edge_cli, tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    node = onnx.helper.make_node("NoSuchOp", ["x"], ["y"])
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [x], [y]))
    onnx.save(model, str(tmp_path / "odd.onnx"))
    result = edge_cli("export", tmp_path / "odd.onnx", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 4, result
    assert "odd.onnx fails the ONNX checker" in result.stderr and "NoSuchOp" in result.stderr


@pytest.mark.parametrize("name, hint", [("rpi", "did you mean 'rpi"), ("jetson", "did you mean 'jetson-orin-nano'")])
def test_unknown_target(edge_cli, ocr_det, tmp_path, name, hint):
    result = edge_cli("export", ocr_det, "-t", name, "-o", tmp_path / "b")
    assert result.code == 5, result
    assert f"unknown target '{name}'" in result.stderr and hint in result.stderr
