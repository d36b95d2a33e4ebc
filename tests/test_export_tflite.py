"""TFLite artifacts: converted by litert-torch, quantized by ai-edge-quantizer, validated and
gated in the real LiteRT interpreter, with their ops and signature in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edge
from edge.device.runtime.tflite_ops import read_ops, unsupported

from conftest import DIGITS, ROOT, manifest_of

IMAGES = ROOT / "examples/digits/images"
MINILM_DATA = ROOT / "examples/minilm"
pytestmark = pytest.mark.slow


def _wakeword_file() -> Path:
    import pyopen_wakeword

    return Path(pyopen_wakeword.__file__).parent / "models" / "hey_jarvis.tflite"


def _export(edge_cli, source, out: Path, *args) -> dict:
    result = edge_cli("export", source, "-o", out, *args)
    assert result.code == 0, result
    return manifest_of(out)


def _by_name(manifest: dict) -> dict[str, dict]:
    return {a["name"]: a for a in manifest["artifacts"]}


@pytest.fixture(scope="module", params=["rpi5", "android-arm64"])
def digits_tflite(request, tmp_path_factory):
    from click.testing import CliRunner

    from edge.cli import main

    out = tmp_path_factory.mktemp("tflite") / f"digits-{request.param}"
    result = CliRunner().invoke(main, ["export", DIGITS, "-t", request.param, "-o", str(out),
                                       "--calib-data", str(IMAGES), "--eval-data", str(IMAGES)])
    assert result.exit_code == 0, result.output
    return out


def test_digits_tflite_variants_are_validated_and_gated_in_litert(digits_tflite):
    m = manifest_of(digits_tflite)
    arts = _by_name(m)
    assert {"tflite-fp32", "tflite-fp16", "tflite-int8", "tflite-int8-static"} <= set(arts)
    fp32 = arts["tflite-fp32"]
    assert fp32["format"] == "tflite" and fp32["path"].endswith(".tflite")
    assert fp32["validation"]["passed"] and fp32["validation"]["runtime"].startswith("LiteRT")
    assert fp32["validation"]["reference"].startswith("torch")
    for name in ("tflite-fp16", "tflite-int8", "tflite-int8-static"):
        gate = arts[name]["gate"]
        assert gate["passed"] and gate["kind"] == "classifier", (name, gate)
        assert arts[name]["size"] < fp32["size"]
    for art in arts.values():  # the compatibility record: what a CNN's TFLite file must hold, by name and version
        if art["format"] == "tflite":
            names = {name for name, _ in art["ops"]}
            assert {"CONV_2D", "FULLY_CONNECTED"} <= names, (art["name"], names)
            assert all(isinstance(v, int) and v >= 1 for _, v in art["ops"])
            assert len(names) == len(art["ops"])  # one row per op kind
    assert ["FULLY_CONNECTED", 1] in read_ops(_wakeword_file())  # the reader, on a file edge did not write


def test_digits_tflite_is_channels_last_and_the_runtime_feeds_it_nchw(digits_tflite):
    m = manifest_of(digits_tflite)
    fp32 = _by_name(m)["tflite-fp32"]
    assert m["inputs"][0]["layout"] == "NCHW" and m["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    assert fp32["layouts"] == {"pixels": "NHWC"} and fp32["inputs"][0]["shape"] == [1, 8, 8, 1]
    static = _by_name(m)["tflite-int8-static"]
    assert static["inputs"][0]["dtype"] == "int8" and static["inputs"][0]["quantization"]["scale"] > 0
    target = m["target"]["name"]
    from edge.build.data import load, Preprocess
    from edge.core.specs import DimSizes, TensorSpec

    data = load(IMAGES, [TensorSpec.from_json(m["inputs"][0])], tokenizer_dir=None, dims=DimSizes(), preprocess=Preprocess())
    onnx = edge.load(digits_tflite, target=target, runtime="onnxruntime")
    expected = [onnx.run(s)["logits"].argmax() for s in data.samples]
    for name in ("tflite-fp32", "tflite-int8-static"):
        model = _only(digits_tflite, name, target)
        assert model.choice.runtime == "litert"
        got = [model.run(s)["logits"].argmax() for s in data.samples]  # NCHW in, as the manifest says
        assert got == expected, name
        with pytest.raises(edge.InputError, match=r"expected shape \[1, 1, 8, 8\]"):
            model.run(pixels=np.zeros((2, 1, 8, 8), np.float32))  # one fixed shape


def _only(bundle: Path, artifact: str, target: str):
    """``edge.load`` restricted to one artifact, through the manifest's preference."""
    import json

    m = json.loads((bundle / "manifest.json").read_text())
    m["preferred"] = [artifact]
    copy = bundle.parent / f"{bundle.name}-{artifact}"
    if not copy.exists():
        import shutil

        shutil.copytree(bundle, copy)
        (copy / "manifest.json").write_text(json.dumps(m))
    return edge.load(copy, target=target)


def test_signature_names_are_the_manifests(digits_tflite):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(digits_tflite / "model.tflite-fp32.tflite")).get_signature_runner()
    assert list(runner.get_input_details()) == ["pixels"] and list(runner.get_output_details()) == ["logits"]


@pytest.fixture(scope="module")
def minilm_tflite(tmp_path_factory, minilm_dir):
    from click.testing import CliRunner

    from edge.cli import main

    out = tmp_path_factory.mktemp("tflite") / "minilm"
    result = CliRunner().invoke(main, [
        "export", str(minilm_dir), "-t", "rpi5", "-o", str(out), "--format", "tflite", "--dim", "sequence=128",
        "--calib-data", str(MINILM_DATA / "calib.txt"), "--eval-data", str(MINILM_DATA / "eval.txt")])
    assert result.exit_code == 0, result.output
    return out


def test_minilm_tflite_int8_passes_the_embedding_gate_on_real_sentences(minilm_tflite):
    m = manifest_of(minilm_tflite)
    arts = _by_name(m)
    assert set(arts) == {"fp32", "tflite-fp32", "tflite-fp16", "tflite-int8"}  # --format tflite: fp32 ONNX is the reference
    assert arts["tflite-fp32"]["validation"]["passed"]
    gate = arts["tflite-int8"]["gate"]
    assert gate["passed"] and gate["kind"] == "embedding" and gate["metrics"]["min_cosine"] >= 0.99
    assert m["evaluation"]["data"]["samples"] == 200
    assert arts["tflite-int8"]["size"] < arts["tflite-fp32"]["size"] / 3
    ids = arts["tflite-int8"]["inputs"][0]
    assert ids["name"] == "input_ids" and ids["dtype"] == "int32" and ids["shape"] == [1, 128]


def test_minilm_tflite_runs_from_int64_ids_and_refuses_an_old_interpreter(minilm_tflite):
    m = manifest_of(minilm_tflite)
    ops = _by_name(m)["tflite-int8"]["ops"]
    assert ["GATHER_ND", 5] in ops and unsupported(ops, "tflite-runtime") == ["GATHER_ND v5"]
    with pytest.raises(edge.EdgeError, match="tflite-runtime cannot run GATHER_ND v5"):
        edge.load(minilm_tflite, target="rpi5", runtime="tflite-runtime")  # refused before loading, not garbage
    model = _only(minilm_tflite, "tflite-int8", "rpi5")
    feeds = {"input_ids": np.full((1, 128), 101, np.int64), "token_type_ids": np.zeros((1, 128), np.int64),
             "attention_mask": np.ones((1, 128), np.int64)}
    hidden = model.run(feeds)["last_hidden_state"]
    reference = edge.load(minilm_tflite, target="rpi5", runtime="onnxruntime").run(feeds)["last_hidden_state"]
    cos = float((hidden * reference).sum() / np.linalg.norm(hidden) / np.linalg.norm(reference))
    assert hidden.shape == (1, 128, 384) and cos > 0.98


def test_inspect_says_which_interpreters_can_run_each_artifact(edge_cli, minilm_tflite):
    result = edge_cli("inspect", minilm_tflite)
    assert result.code == 0, result
    assert "GATHER_ND v5" in result.stdout and "tflite-runtime" in result.stdout


def test_an_op_litert_cannot_convert_is_named(edge_cli, tmp_path):
    (tmp_path / "det.py").write_text(
        "import torch\n"
        "class Det(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.linalg.det(x)\n"
        "def create():\n"
        "    return Det().eval(), ['x:float32[1,4,4]'], ['y']\n")
    source = f"{tmp_path / 'det.py'}:create"
    result = edge_cli("export", source, "-t", "rpi5", "-o", tmp_path / "b", "--format", "tflite")
    assert result.code == 6, result  # UnsupportedOpError
    assert "litert-torch cannot convert aten._linalg_det" in result.stderr
    assert "use the ONNX artifact instead" in result.stderr
    assert not (tmp_path / "b").exists()  # nothing half-written

    m = _export(edge_cli, source, tmp_path / "kept", "-t", "rpi5", "--format", "onnx,tflite", "--no-strict")
    assert [a["format"] for a in m["artifacts"]] == ["onnx"]
    skipped = {s["variant"]: s["reason"] for s in m["skipped"]}
    assert "aten._linalg_det" in skipped["tflite-fp32"] and "aten._linalg_det" in skipped["tflite-int8"]
    assert any("no TFLite artifacts" in n for n in m["notes"])


def test_tflite_needs_a_fixed_size_for_every_open_axis(edge_cli, tmp_path, minilm_dir):
    result = edge_cli("export", minilm_dir, "-t", "rpi5", "-o", tmp_path / "b", "--format", "tflite",
                      "--variant", "tflite-fp32")
    assert result.code == 2, result
    assert "axis 'sequence'" in result.stderr and "--dim sequence=N" in result.stderr


def test_a_format_the_profile_lacks_is_refused(edge_cli, tmp_path):
    onnx_only = tmp_path / "onnx-only.toml"
    onnx_only.write_text('extends = "x86"\n[[variants]]\nname = "fp32"\nprecision = "fp32"\n')
    result = edge_cli("export", DIGITS, "-t", "x86-64-generic", "--profile", onnx_only, "-o", tmp_path / "b",
                      "--format", "tflite")
    assert result.code == 2 and "builds no tflite artifacts" in result.stderr, result


MLP = """
import torch


def create():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    return net, ["x:float32[batch,16]:-1..1"], ["y"]
"""


def test_a_model_of_linear_layers_gets_a_tflite_int8(edge_cli, tmp_path):
    """Its ONNX graph holds Gemm, which onnxruntime's dynamic quantizer does not list; its TFLite file
    holds FULLY_CONNECTED, which ai-edge-quantizer quantizes. The TFLite variant is judged on the latter."""
    (tmp_path / "mlp.py").write_text(MLP)
    m = _export(edge_cli, f"{tmp_path / 'mlp.py'}:create", tmp_path / "b", "-t", "rpi5", "--format", "tflite",
                "--variant", "tflite-int8")
    skipped = {s["variant"]: s["reason"] for s in m["skipped"]}
    assert "tflite-int8" not in skipped, skipped
    int8 = _by_name(m)["tflite-int8"]
    assert int8["gate"]["passed"] and "FULLY_CONNECTED" in {name for name, _ in int8["ops"]}
    x = np.linspace(-1, 1, 16, dtype=np.float32)[None]
    got = edge.load(tmp_path / "b", target="rpi5", runtime="litert").run({"x": x})["y"]
    assert got.shape == (1, 4) and np.isfinite(got).all()


def test_a_layer_kept_float_by_the_repair_stays_float_in_the_file(tmp_path):
    """The repair names a layer by its op's output tensor; ai-edge-quantizer matches its rule against
    the op's scope ("name;"), so the rule must match that form or nothing stays float."""
    import torch

    from ai_edge_litert.tools import flatbuffer_utils as fb

    from edge.build.tflite import convert
    from edge.core.catalog import Variant
    from edge.core.specs import TensorSpec

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    source = tmp_path / "mlp.tflite"
    convert.convert(net, [TensorSpec("x", "float32", (1, 16))], ["y"], source)
    first, second = [name for name, _, _ in convert.layers(source)]
    out = tmp_path / "int8.tflite"
    convert.quantize(source, out, Variant("tflite-int8", "tflite", "int8-dynamic"), [], keep_float=[first])

    model = fb.read_model(str(out))
    graph = model.subgraphs[0]
    weight_types = {}
    for op in graph.operators:
        if fb.opcode_to_name(model, op.opcodeIndex) == "FULLY_CONNECTED":
            output = graph.tensors[op.outputs[0]].name
            weight_types[output.decode() if isinstance(output, bytes) else output] = graph.tensors[op.inputs[1]].type
    int8, float32 = 9, 0  # TensorType in the TFLite schema
    assert weight_types == {first: float32, second: int8}
