"""The accuracy gate's measures, on hand-made outputs whose answers are known."""

from __future__ import annotations

import numpy as np

from edge.core.catalog import Gate
from edge.build.gate import evaluate, kind_for, snr_db
from edge.core.specs import parse_spec


def test_classifier_agreement_and_accuracy():
    ref = [{"logits": np.eye(4)[[i]]} for i in range(4)]  # predicts 0, 1, 2, 3
    cand = [{"logits": np.eye(4)[[i if i < 3 else 0]]} for i in range(4)]  # last one wrong
    labels = np.array([0, 1, 2, 3])
    report = evaluate("classifier", ref, cand, [{}] * 4, Gate(max_top1_drop=1.0), labels)
    assert report.metrics["top1_agreement"] == 75.0
    assert report.metrics["reference_accuracy"] == 100.0 and report.metrics["accuracy"] == 75.0
    assert not report.passed and "top-1 drop 25.00 pp" in report.failures[0]
    assert report.worst_samples(1) == [3]
    assert evaluate("classifier", ref, cand, [{}] * 4, Gate(max_top1_drop=30.0), labels).passed


def test_embedding_uses_masked_mean_pooling():
    hidden = np.zeros((1, 3, 2))
    hidden[0, 0] = [1, 0]
    hidden[0, 1] = [1, 0]
    noisy = hidden.copy()
    noisy[0, 2] = [0, 50]  # a padding token: must not count
    feeds = {"attention_mask": np.array([[1, 1, 0]])}
    report = evaluate("embedding", [{"h": hidden}], [{"h": noisy}], [feeds], Gate(min_cosine=0.99))
    assert report.passed and report.metrics["min_cosine"] == 1.0
    noisy[0, 1] = [0, 1]
    report = evaluate("embedding", [{"h": hidden}], [{"h": noisy}], [feeds], Gate(min_cosine=0.99))
    assert not report.passed and abs(report.metrics["min_cosine"] - 1 / np.sqrt(2)) < 1e-9


def test_generic_snr_cosine_and_atol_waiver():
    ref = [{"y": np.linspace(-1, 1, 100)}]
    close = [{"y": ref[0]["y"] + 0.01}]
    report = evaluate("generic", ref, close, [{}], Gate(min_cosine=0.99, min_snr_db=20, atol=1e-6))
    out = report.metrics["outputs"]["y"]
    assert report.passed and 30 < out["snr_db"] < 40
    far = [{"y": ref[0]["y"] * -1}]
    assert not evaluate("generic", ref, far, [{}], Gate(atol=1e-6)).passed
    tiny = [{"y": np.full(10, 1e-7)}]
    flipped = [{"y": np.full(10, -1e-7)}]  # cosine -1, SNR -6 dB, but nothing is really off
    assert evaluate("generic", tiny, flipped, [{}], Gate(atol=1e-3)).passed
    assert snr_db(np.ones(4), np.ones(4)) == float("inf")


def test_kind_from_task_and_outputs():
    logits = [parse_spec("logits:float32[batch,10]")]
    hidden = [parse_spec("h:float32[batch,seq,384]")]
    assert kind_for(Gate(), "feature-extraction", hidden) == "embedding"
    assert kind_for(Gate(), "text-classification", logits) == "classifier"
    assert kind_for(Gate(), None, logits) == "classifier"
    assert kind_for(Gate(), None, hidden) == "generic"
    assert kind_for(Gate(kind="generic"), None, logits) == "generic"
