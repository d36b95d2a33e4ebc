"""`edge export` of transformers models from local folders (never a hub)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import manifest_of

SENTENCES = [
    "A small model on a small board.",
    "The Raspberry Pi runs the sentence encoder in a few milliseconds.",
    "Quantization can make a model slower if the kernels do not fit the CPU.",
    "Energy per inference matters on battery-powered devices.",
]


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A small random BERT classifier saved the way save_pretrained does, with a tokenizer."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128, num_labels=3)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_minilm_exports_and_matches_torch_on_real_sentences(edge_cli, minilm_dir, tmp_path):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)
    batch = tokenizer(SENTENCES, padding="max_length", max_length=128, truncation=True, return_tensors="np")
    np.savez(tmp_path / "sentences.npz", **{k: v.astype(np.int64) for k, v in batch.items()})
    out = tmp_path / "minilm"
    result = edge_cli("export", minilm_dir, "-t", "x86-avx512", "-o", out, "--variant", "fp32")
    assert result.code == 0, result
    m = manifest_of(out)
    assert m["source"]["task"] == "feature-extraction" and m["source"]["architecture"] == "BertModel"
    assert {s["name"] for s in m["inputs"]} == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(s["shape"] == ["batch", "sequence"] for s in m["inputs"])
    assert m["outputs"] == [{"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "sequence", 384]}]
    assert m["artifacts"][0]["validation"]["passed"] and "transformers" in m["tools"]

    # The artifact gives the sentence-transformers embedding (mean pooling) of the torch model.
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / m["artifacts"][0]["path"]))
    hidden = session.run(None, {k: v.astype(np.int64) for k, v in batch.items()})[0]
    model = transformers.AutoModel.from_pretrained(str(minilm_dir), local_files_only=True).eval()
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in batch.items()}).last_hidden_state.numpy()
    mask = batch["attention_mask"][..., None]
    pooled, pooled_ref = ((h * mask).sum(1) / mask.sum(1) for h in (hidden, expected))
    cos = (pooled * pooled_ref).sum(1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(pooled_ref, axis=1)
    assert cos.min() > 0.99999
    assert np.abs(hidden - expected).max() < 1e-4


def test_tiny_classifier_task_is_inferred(edge_cli, tiny_classifier, tmp_path):
    result = edge_cli("export", tiny_classifier, "-t", "rpi5", "-o", tmp_path / "b", "--dim", "sequence=20")
    assert result.code == 0, result
    m = manifest_of(tmp_path / "b")
    assert m["source"]["task"] == "text-classification"
    assert m["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]}]
    assert m["inputs"][0]["range"] == [0, 119]  # ids drawn within the vocabulary
    assert m["artifacts"][0]["validation"]["passed"]


def test_not_a_transformers_folder(edge_cli, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    result = edge_cli("export", folder, "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 4, result
    assert "is not a transformers model: it has no config.json" in result.stderr
    assert "save_pretrained" in result.stderr


def test_config_without_weights(edge_cli, tiny_classifier, tmp_path):
    folder = tmp_path / "noweights"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_classifier / "config.json").read_text())
    result = edge_cli("export", folder, "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 4 and "has a config but no weights" in result.stderr


def test_task_that_cannot_be_inferred(edge_cli, tiny_classifier, tmp_path):
    folder = tmp_path / "pretraining"
    folder.mkdir()
    config = json.loads((tiny_classifier / "config.json").read_text())
    config["architectures"] = ["BertForPreTraining"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((tiny_classifier / "model.safetensors").read_bytes())
    result = edge_cli("export", folder, "-t", "rpi4", "-o", tmp_path / "b")
    assert result.code == 2 and "cannot infer the task" in result.stderr and "--task" in result.stderr
    result = edge_cli("export", folder, "-t", "rpi4", "-o", tmp_path / "b", "--task", "feature-extraction")
    assert result.code == 0, result
    assert manifest_of(tmp_path / "b")["outputs"][0]["name"] == "last_hidden_state"
