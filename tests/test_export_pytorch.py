"""`edge export` of PyTorch factories, end to end through the CLI, with real torch and onnxruntime."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from edge.core.bundle import sha256_file

from conftest import DIGITS, ROOT, host_target, manifest_of


def _digits_test_set():
    sys.path.insert(0, str(ROOT / "examples/digits"))
    try:
        from train import data
    finally:
        sys.path.pop(0)
    _, x_test, _, y_test = data()
    return x_test, y_test


def test_digits_bundle_manifest(digits_bundle):
    m = manifest_of(digits_bundle)
    assert m["schema_version"] == 1
    assert m["source"]["kind"] == "pytorch" and len(m["source"]["sha256"]) == 64
    assert m["target"]["name"] == host_target() and m["profile"]["name"] == host_target()
    assert m["inputs"] == [{"name": "pixels", "dtype": "float32", "shape": ["batch", 1, 8, 8], "range": [0.0, 1.0],
                            "layout": "NCHW", "finite": True}]  # guessed from [N, 1, 8, 8]; the TFLite files are NHWC
    assert m["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}]
    art, *quantized = m["artifacts"]
    assert art["format"] == "onnx" and art["precision"] == "fp32" and art["opset"] == 20
    path = digits_bundle / art["path"]
    assert art["size"] == path.stat().st_size and art["sha256"] == sha256_file(path)
    val = art["validation"]
    assert val["passed"] and val["samples"] == 3 and val["reference"].startswith("torch")
    assert val["outputs"]["logits"]["max_abs_diff"] < 1e-4
    assert {"edge", "torch", "onnx", "onnxruntime", "onnxslim"} <= set(m["tools"])
    assert [q["name"] for q in quantized] == ["int8", "int8-static"]  # the x86 profile's variants
    assert all(q["gate"]["passed"] for q in quantized)
    assert sorted(p.name for p in digits_bundle.iterdir()) == [
        "manifest.json", "model.fp32.onnx", "model.int8-static.onnx", "model.int8.onnx"]


def test_digits_bundle_classifies_the_real_test_set(digits_bundle):
    import onnxruntime as ort
    import torch

    sys.path.insert(0, str(ROOT / "examples/digits"))
    from model import create

    sys.path.pop(0)
    x_test, y_test = _digits_test_set()
    session = ort.InferenceSession(str(digits_bundle / "model.fp32.onnx"))
    logits = session.run(None, {"pixels": x_test})[0]  # the whole test set as one dynamic batch
    with torch.no_grad():
        expected = create()[0](torch.from_numpy(x_test)).numpy()
    assert np.array_equal(logits.argmax(1), expected.argmax(1))
    assert (logits.argmax(1) == y_test).mean() > 0.95


def test_inspect_prints_the_bundle(edge_cli, digits_bundle):
    result = edge_cli("inspect", digits_bundle)
    assert result.code == 0, result
    for text in ("pixels", "[batch, 1, 8, 8]", "model.fp32.onnx", "passed", host_target()):
        assert text in result.stdout
    assert '"schema_version": 1' in edge_cli("inspect", digits_bundle, "--json").stdout


def test_sample_inputs_and_input_override(edge_cli, tmp_path):
    x_test, _ = _digits_test_set()
    np.savez(tmp_path / "real.npz", pixels=x_test[:16])
    out = tmp_path / "b"
    result = edge_cli("export", DIGITS, "-t", "rpi5", "-o", out, "--sample-inputs", tmp_path / "real.npz",
                      "--input", "pixels:float32[n,1,8,8]:0..1")
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["inputs"][0]["shape"] == ["n", 1, 8, 8]
    assert m["artifacts"][0]["validation"]["inputs"] == "real.npz: 16 samples"
    assert m["profile"]["variants"][2]["activation_type"] == "s8"  # the rpi5 recipe, carried through


def test_sample_inputs_of_the_wrong_shape(edge_cli, tmp_path):
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((2, 8, 8), np.float32))
    result = edge_cli("export", DIGITS, "-t", "rpi5", "-o", tmp_path / "b", "--sample-inputs", tmp_path / "bad.npz")
    assert result.code == 2, result
    assert "input 'pixels' has shape [2, 8, 8], expected ['batch', 1, 8, 8]" in result.stderr
    assert not (tmp_path / "b").exists()


def test_output_that_exists_is_refused_unless_force(edge_cli, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    result = edge_cli("export", DIGITS, "-t", "rpi4", "-o", out)
    assert result.code == 8, result
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (out / "mine.txt").exists()
    assert edge_cli("export", DIGITS, "-t", "rpi4", "-o", out, "--force").code == 0
    assert not (out / "mine.txt").exists() and (out / "manifest.json").exists()


def test_validation_failure_fails_and_writes_nothing(edge_cli, tmp_path):
    strict = tmp_path / "exact.toml"
    strict.write_text('extends = "x86-avx512"\n[validation]\natol = 0.0\nrtol = 0.0\nmin_cosine = 1.0\n')
    out = tmp_path / "b"
    result = edge_cli("export", DIGITS, "-t", "x86-avx512", "--profile", strict, "-o", out)
    assert result.code == 7, result
    assert "output 'logits' differs from torch" in result.stderr and "--no-strict" in result.stderr
    assert list(tmp_path.iterdir()) == [strict]
    result = edge_cli("export", DIGITS, "-t", "x86-avx512", "--profile", strict, "-o", out, "--no-strict")
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["artifacts"][0]["validation"]["passed"] is False and "FAILED" in m["notes"][0]
    assert "FAILED" in result.stdout


def _write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_unsupported_op_names_op_and_module(edge_cli, tmp_path):
    path = _write(tmp_path, "spectral.py", """
        import torch

        class Eigen(torch.nn.Module):
            def forward(self, x):
                return torch.linalg.eigvals(x).real

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Linear(4, 4)
                self.spectrum = Eigen()

            def forward(self, x):
                return self.spectrum(self.proj(x))

        def create():
            return Net(), ["x:float32[4,4]"]
        """)
    result = edge_cli("export", f"{path}:create", "-t", "x86-avx512", "-o", tmp_path / "b")
    assert result.code == 6, result
    assert "cannot export op aten.linalg_eig in module 'spectrum' (Eigen)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "b").exists()


def test_factory_that_raises(edge_cli, tmp_path):
    path = _write(tmp_path, "broken.py", "def create():\n    raise FileNotFoundError('weights.pt not found')\n")
    result = edge_cli("export", f"{path}:create", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 6, result
    assert "raised FileNotFoundError: weights.pt not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_factory_without_signature_and_missing_factory(edge_cli, tmp_path):
    path = _write(tmp_path, "plain.py", "import torch\n\ndef create():\n    return torch.nn.Linear(3, 2)\n")
    result = edge_cli("export", f"{path}:create", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 2 and "no input signature" in result.stderr and "--input" in result.stderr
    result = edge_cli("export", f"{path}:make", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 2 and "has no callable 'make'" in result.stderr and "create" in result.stderr
    result = edge_cli("export", f"{path}:create", "-t", "rpi4", "-o", tmp_path / "b", "--input", "x:float32[batch,3]")
    assert result.code == 0, result


@pytest.mark.parametrize("spec", ["model.py:", "model.py:1create", "a:b:c", ":create"])
def test_malformed_factory_spec(edge_cli, tmp_path, spec):
    result = edge_cli("export", spec, "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 2, result
    assert "malformed model spec" in result.stderr and "path/to/file.py:factory" in result.stderr


def test_missing_file_and_module(edge_cli, tmp_path):
    result = edge_cli("export", tmp_path / "nope.py:create", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 3 and "no such file" in result.stderr
    result = edge_cli("export", "no_such_package.models:create", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 3 and "cannot import module 'no_such_package.models'" in result.stderr
    result = edge_cli("export", tmp_path / "nothing", "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 3 and "no such file or folder" in result.stderr


def test_package_module_factory(edge_cli, tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _write(pkg, "nets.py", """
        import torch

        def tiny():
            return torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh()), ["features:float32[batch,6]"], ["scores"]
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = edge_cli("export", "mypkg.nets:tiny", "-t", "x86-minipc", "-o", tmp_path / "b")
    assert result.code == 0, result
    m = manifest_of(tmp_path / "b")
    assert m["outputs"][0]["name"] == "scores" and m["source"]["ref"] == "mypkg.nets:tiny"
