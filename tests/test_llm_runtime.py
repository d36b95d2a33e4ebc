"""Language models on the device: generate, stream, score through edge.load, on a tiny Llama
exported by the real pipeline (transformers -> torch.onnx -> MatMulNBits), checked against transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.cli.report import svg
from edge.core.errors import InvalidModelError, UsageError

from conftest import host_bundle, host_target, manifest_of
from llm_models import save

PROMPT = "The module is"


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> tuple[Path, Path]:
    """(transformers folder, bundle with fp32 and int8-weights) of a tiny random Llama."""
    from click.testing import CliRunner

    from edge.cli import main

    exported = host_bundle("lm")
    if exported is not None:
        return None, exported  # the emulated Pi lane: no transformers folder there, only the bundle
    root = tmp_path_factory.mktemp("lm")
    folder = save("llama", root / "llama")
    bundle = root / "bundle"
    done = CliRunner().invoke(main, ["export", str(folder), "-t", host_target(), "-o", str(bundle),
                                     "--variant", "int8-weights"])
    assert done.exit_code == 0, done.output
    return folder, bundle


def _reference(folder: Path, prompt: str, count: int) -> tuple[list[int], str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=count, do_sample=False,
                             pad_token_id=0)[0, ids.shape[1]:].tolist()
    return out, tok.decode(out, skip_special_tokens=True)


@pytest.mark.export
def test_greedy_text_is_the_source_models(tiny_lm):
    folder, bundle = tiny_lm
    tokens, text = _reference(folder, PROMPT, 24)
    model = edge.load(bundle, artifact="fp32")
    assert model.choice.artifact == "fp32" and isinstance(model, edge.LanguageModel)
    g = model.generator(max_new_tokens=24)
    g.append(model.encode(PROMPT))
    while not g.done:
        g.next()
    eos = next((i for i, t in enumerate(tokens) if t == 2), len(tokens))
    assert g.tokens[: eos + 1] == tokens[: eos + 1]
    assert model.generate(PROMPT, max_new_tokens=24) == text[: len(model.generate(PROMPT, max_new_tokens=24))]


def test_stream_pieces_add_up_to_generate_and_stop_strings_cut(tiny_lm):
    model = edge.load(tiny_lm[1])
    assert model.choice.artifact == "int8-weights"  # the smaller variant passed its gate and comes first
    whole = model.generate(PROMPT, max_new_tokens=20)
    pieces = list(model.stream(PROMPT, max_new_tokens=20))
    assert len(pieces) > 1 and "".join(pieces) == whole
    stop = whole[len(whole) // 2: len(whole) // 2 + 2]
    cut = model.generate(PROMPT, max_new_tokens=20, stop=[stop])
    assert cut == whole[: whole.index(stop)]


def test_seeded_sampling_repeats_and_differs_from_greedy(tiny_lm):
    model = edge.load(tiny_lm[1])
    a = model.generate(PROMPT, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=3)
    assert a == model.generate(PROMPT, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=3)
    others = {model.generate(PROMPT, max_new_tokens=16, temperature=1.0, seed=s) for s in range(4, 8)}
    assert len(others | {a}) > 1  # other seeds, other text


@pytest.mark.export
def test_score_is_the_mean_negative_log_likelihood(tiny_lm):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, bundle = tiny_lm
    text = "How are modules imported in Python?"
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(folder).eval()(ids).logits[0, :-1]
        expected = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    assert edge.load(bundle, artifact="fp32").score(text) == pytest.approx(expected, abs=1e-4)
    quantized = edge.load(bundle).score(text)
    assert quantized != expected and quantized == pytest.approx(expected, rel=0.05)


def test_chat_template_and_context_limits(tiny_lm):
    model = edge.load(tiny_lm[1])
    ids = model.encode("hi", chat=True)
    assert model.text.decode(ids) == "<user>hi\n<assistant>" and ids[0] == 1  # one BOS, written by the template
    with pytest.raises(UsageError, match="takes 256 tokens in all"):
        model.generate("word " * 300)
    with pytest.raises(UsageError, match="max_new_tokens must be >= 1"):
        model.generate(PROMPT, max_new_tokens=0)
    with pytest.raises(UsageError, match="at least two tokens"):
        model.score("")


def test_cli_streams_the_answer(edge_cli, tiny_lm):
    done = edge_cli("run", tiny_lm[1], "--prompt", PROMPT, "--max-new-tokens", 12)
    assert done.code == 0, done
    assert done.stdout.strip() == edge.load(tiny_lm[1]).generate(PROMPT, max_new_tokens=12).strip()
    assert "not a benchmark" in done.stderr
    assert edge_cli("run", tiny_lm[1], "--text", "hi").code == UsageError.exit_code
    assert edge_cli("run", tiny_lm[1], "--prompt", "x", "--temperature", "-1").code == UsageError.exit_code


def test_generation_needs_no_torch_or_transformers(tiny_lm):
    code = ("import sys, edge\n"
            f"m = edge.load({str(tiny_lm[1])!r})\n"
            f"print(repr(''.join(m.stream({PROMPT!r}, max_new_tokens=8))))\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'transformers', 'onnx')"
            " or k.startswith(('edge.build', 'edge.exporters'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    text, loaded = out.stdout.strip().splitlines()
    assert loaded == "[]" and eval(text) == edge.load(tiny_lm[1]).generate(PROMPT, max_new_tokens=8)


def test_a_bundle_without_its_tokenizer_is_refused(tiny_lm, tmp_path):
    import shutil

    bundle = Path(shutil.copytree(tiny_lm[1], tmp_path / "b"))
    (bundle / manifest_of(bundle)["generation"]["tokenizer"]).unlink()
    with pytest.raises(InvalidModelError, match="has no tokenizer"):
        edge.load(bundle)


def test_profile_reports_time_to_first_token_and_tokens_per_second(edge_cli, tiny_lm, tmp_path):
    out = tmp_path / "lm.json"
    done = edge_cli("profile", tiny_lm[1], "--artifact", "int8-weights", "--runs", 40, "--warmup", 3, "--threads", 1,
                    "--prompt-tokens", 48, "--new-tokens", 16, "-o", out)
    assert done.code == 0, done
    (r,) = json.loads(out.read_text())["results"]
    g = r["generation"]
    assert g["prompt_tokens"] == 48 and g["new_tokens"] == 16 and g["generations"] >= 3
    assert g["ttft_ms"]["count"] == g["generations"] and g["decode_ms_per_token"]["count"] == r["latency_ms"]["count"]
    # 40 timed tokens, 16 per generation: the first of each is a prompt read, the rest decode steps
    assert g["ttft_ms"]["count"] + g["decode_ms_per_token"]["count"] >= 40
    assert g["decode_tokens_per_s"] == pytest.approx(1000 / np.mean(r["latency_ms"]["samples"]), rel=1e-3)
    assert r["input_shapes"] == {"input_ids": [1, 48]} and r["memory_mb"]["peak"] > 0
    assert "time to first token" in done.stdout and "tokens/s" in done.stdout
    page = edge_cli("report", out, "-o", tmp_path / "lm.html")  # the report plots them beside other results
    assert page.code == 0, page
    html = (tmp_path / "lm.html").read_text()
    section = html[html.index('id="generation"'):]
    assert "int8-weights" in section and "decode tokens per second" in section and "time to first token" in section
    assert svg.number(g["decode_tokens_per_s"]) in section  # the measured rate, as the file gives it
    too_long = edge_cli("profile", tiny_lm[1], "--prompt-tokens", 250, "--new-tokens", 16, "-o", tmp_path / "x.json")
    assert too_long.code == UsageError.exit_code and "exceed the model's context of 256" in too_long.stderr


def test_variants_skipped_for_one_reason_are_named_on_one_line(tiny_lm):
    from dataclasses import replace

    from rich.console import Console

    from edge.cli import terminal
    from edge.core.bundle import read_manifest

    m = read_manifest(tiny_lm[1])
    why, other = "not applicable: a language model gets weight-only int8/int4 variants", "from a GGUF: no int4"
    skipped = [{"variant": v, "format": f, "precision": p, "reason": why}
               for v, f, p in (("int8", "onnx", "int8-dynamic"), ("tflite-fp32", "tflite", "fp32"))]
    skipped.append({"variant": "int4-weights", "format": "onnx", "precision": "int4-weights", "reason": other})
    m = replace(m, skipped=skipped, notes=["an unrelated note"])
    console = Console(width=400, record=True)
    console.print(terminal.manifest(m, "b"))
    lines = console.export_text().splitlines()
    assert [ln for ln in lines if ln.startswith("not built")] == [
        f"not built: int8 (onnx int8-dynamic), tflite-fp32 (tflite fp32): {why}",
        f"not built: int4-weights (onnx int4-weights): {other}"]
    assert "note: an unrelated note" in lines
