"""The accuracy gate's measures, on hand-made outputs whose answers are known.

The data is lopsided on purpose: one bad sample among good ones, more samples than classes,
errors that sit exactly on a budget. Symmetric data (an identity matrix of logits, every sample
equally wrong) lets a swapped axis, a mean for a minimum or a ``<`` for a ``<=`` pass unseen.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.core.catalog import Gate
from edge.build.gate import GateReport, evaluate, kind_for, snr_db
from edge.core.specs import parse_spec

# Five samples, three classes (more samples than classes: argmax over the wrong axis shows).
LOGITS = np.array([[0.1, 2.0, 0.3], [1.5, 0.2, 0.1], [0.0, 0.4, 0.9], [0.7, 0.6, 0.1], [0.2, 0.1, 3.0]])
LABELS = np.array([1, 0, 1, 0, 0])  # fp32 predicts 1, 0, 2, 0, 2: right on 3 of 5


def _split(logits: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [{"logits": row[None]} for row in logits]


def test_classifier_agreement_and_accuracy():
    cand = LOGITS.copy()
    cand[1] = [0.1, 1.2, 0.0]  # sample 1 flips from class 0 (right) to 1 (wrong)
    report = evaluate("classifier", _split(LOGITS), _split(cand), [{}] * 5, Gate(max_top1_drop=1.0), LABELS)
    m = report.metrics
    assert m["top1_agreement"] == 80.0 and m["samples"] == 5
    assert m["reference_accuracy"] == 60.0 and m["accuracy"] == 40.0  # a median of hits would say 100 and 0
    assert m["top1_drop"] == 20.0
    assert not report.passed and report.failures == ["top-1 drop 20.00 pp > 1"]
    assert report.worst_samples(1) == [1] and len(report.worst_samples(9)) == 5
    assert report.badness[0] == pytest.approx(0.0, abs=1e-12) and report.badness[1] == pytest.approx(
        1 - LOGITS[1] @ cand[1] / np.linalg.norm(LOGITS[1]) / np.linalg.norm(cand[1]), abs=1e-12)
    # A drop exactly on the budget passes; a hair over it misses.
    assert evaluate("classifier", _split(LOGITS), _split(cand), [{}] * 5, Gate(max_top1_drop=20.0), LABELS).passed
    assert not evaluate("classifier", _split(LOGITS), _split(cand), [{}] * 5, Gate(max_top1_drop=19.99), LABELS).passed
    assert report.summary() == "top-1 agreement 80.00 %, accuracy 40.00 % (fp32 60.00 %)"


def test_classifier_without_labels_budgets_the_disagreement():
    cand = LOGITS.copy()
    cand[3] = [0.0, 0.0, 1.0]  # one of five disagrees
    report = evaluate("classifier", _split(LOGITS), _split(cand), [{}] * 5, Gate(max_top1_drop=20.0))
    assert report.metrics["top1_agreement"] == 80.0 and report.metrics["top1_drop"] == 20.0
    assert "accuracy" not in report.metrics and report.passed
    assert report.summary() == "top-1 agreement 80.00 %"
    assert not evaluate("classifier", _split(LOGITS), _split(cand), [{}] * 5, Gate(max_top1_drop=19.0)).passed


def test_embedding_judges_the_worst_sample_not_the_mean():
    """Nine good samples and one bad row: the mean cosine (0.964) is within a 0.95 budget, the worst (0.6) is not."""
    rng = np.random.default_rng(3)
    ref, cand = [], []
    for i in range(10):
        rows = rng.normal(size=(2 if i == 6 else 1, 4))
        ref.append({"e": rows})
        cand.append({"e": rows * 1.7})  # scaled: cosine 1, though every element moved
    ref[6]["e"][1] = [1.0, 0.0, 0.0, 0.0]
    cand[6]["e"][1] = [0.6, 0.8, 0.0, 0.0]  # cosine 0.6 with the reference row
    report = evaluate("embedding", ref, cand, [{}] * 10, Gate(min_cosine=0.95))
    m = report.metrics
    assert m["samples"] == 11
    assert m["min_cosine"] == pytest.approx(0.6, abs=1e-12)
    assert m["mean_cosine"] == pytest.approx(10.6 / 11, abs=1e-12)  # the median would be 1.0
    assert not report.passed and report.failures == ["min cosine 0.6000 < 0.95"]
    assert report.badness == pytest.approx([0.0] * 6 + [0.4] + [0.0] * 3, abs=1e-12)  # per sample: its worst row
    assert report.worst_samples(1) == [6]
    assert report.summary() == "cosine min 0.6000, mean 0.9636"
    assert report.to_json()["summary"] == report.summary() and report.to_json()["passed"] is False


def test_embedding_cosine_exactly_on_the_budget_passes():
    ref = [{"e": np.array([[1.0, 0.0, 0.0]])}, {"e": np.array([[0.0, 2.0, 0.0]])}]
    cand = [{"e": np.array([[2.0, 0.0, 0.0]])}, {"e": np.array([[0.0, 0.5, 0.0]])}]  # cosines exactly 1.0
    assert evaluate("embedding", ref, cand, [{}, {}], Gate(min_cosine=1.0)).passed


def test_embedding_uses_masked_mean_pooling():
    hidden = np.zeros((1, 3, 2))
    hidden[0, 0] = [1, 0]
    hidden[0, 1] = [1, 0]
    noisy = hidden.copy()
    noisy[0, 2] = [0, 50]  # a padding token: must not count
    feeds = {"attention_mask": np.array([[1, 1, 0]])}
    report = evaluate("embedding", [{"h": hidden}], [{"h": noisy}], [feeds], Gate(min_cosine=0.99))
    assert report.passed and report.metrics["min_cosine"] == 1.0 and report.metrics["samples"] == 1
    noisy[0, 1] = [0, 1]
    report = evaluate("embedding", [{"h": hidden}], [{"h": noisy}], [feeds], Gate(min_cosine=0.99))
    assert not report.passed and abs(report.metrics["min_cosine"] - 1 / np.sqrt(2)) < 1e-9


def test_pooled_embeddings_are_compared_as_they_are():
    """A [batch, hidden] output is already pooled: the attention mask of the inputs must not touch it."""
    feeds = {"attention_mask": np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])}
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    cand = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])  # second row: cosine 1/sqrt(2)
    report = evaluate("embedding", [{"e": ref}], [{"e": cand}], [feeds], Gate(min_cosine=0.5))
    assert report.metrics["samples"] == 2 and report.passed
    assert report.metrics["min_cosine"] == pytest.approx(1 / np.sqrt(2), abs=1e-12)
    assert report.metrics["mean_cosine"] == pytest.approx((1 + 1 / np.sqrt(2)) / 2, abs=1e-12)


def test_generic_snr_cosine_and_atol_waiver():
    ref = [{"y": np.linspace(-1, 1, 100)}]
    close = [{"y": ref[0]["y"] + 0.01}]
    report = evaluate("generic", ref, close, [{}], Gate(min_cosine=0.99, min_snr_db=20, atol=1e-6))
    out = report.metrics["outputs"]["y"]
    signal = float(np.sum(np.linspace(-1, 1, 100) ** 2))
    assert report.passed and out["snr_db"] == pytest.approx(10 * np.log10(signal / (100 * 0.01**2)), abs=1e-6)
    assert out["max_abs_diff"] == pytest.approx(0.01, abs=1e-12) and "note" not in out
    far = [{"y": ref[0]["y"] * -1}]
    assert not evaluate("generic", ref, far, [{}], Gate(atol=1e-6)).passed
    tiny = [{"y": np.full(10, 1e-7)}]
    flipped = [{"y": np.full(10, -1e-7)}]  # cosine -1, SNR -6 dB, but nothing is really off
    waived = evaluate("generic", tiny, flipped, [{}], Gate(atol=1e-3))
    assert waived.passed and waived.metrics["outputs"]["y"]["note"] == "every element within atol 0.001 of fp32"


def test_generic_reports_the_largest_error_and_one_bad_sample():
    ref = [{"y": np.array([0.5, -1.0, 2.0])}, {"y": np.array([3.0, 1.0, -2.0])}]
    cand = [{"y": np.array([0.5, -1.0, 2.0])}, {"y": np.array([3.0, 1.25, -2.0])}]  # one element of one sample
    report = evaluate("generic", ref, cand, [{}, {}], Gate(min_cosine=0.9, min_snr_db=10, atol=1e-3))
    out = report.metrics["outputs"]["y"]
    assert out["max_abs_diff"] == 0.25
    assert report.badness[0] == 0.0 and report.badness[1] == pytest.approx(
        1 - (9 + 1.25 + 4) / np.sqrt(14) / np.sqrt(9 + 1.25**2 + 4), abs=1e-12)
    assert report.worst_samples(2) == [1, 0]


def test_generic_budgets_are_inclusive():
    """A cosine exactly at min_cosine, an SNR exactly at min_snr_db and a diff exactly at atol all pass."""
    ref, cand = [{"y": np.array([1.0, 0.0])}], [{"y": np.array([2.0, 0.0])}]  # cosine 1.0, SNR 0.0 dB
    report = evaluate("generic", ref, cand, [{}], Gate(min_cosine=1.0, min_snr_db=0.0, atol=1e-6))
    out = report.metrics["outputs"]["y"]
    assert (out["cosine"], out["snr_db"], out["max_abs_diff"]) == (1.0, 0.0, 1.0) and "note" not in out
    assert report.passed
    strict = evaluate("generic", ref, cand, [{}], Gate(min_cosine=1.0, min_snr_db=0.5, atol=1e-6))
    assert strict.failures == ["y: SNR 0.0 dB < 0.5"]
    zeros, half = [{"y": np.zeros(3)}], [{"y": np.array([0.0, 0.5, 0.0])}]  # cosine 0, SNR -inf
    assert evaluate("generic", zeros, half, [{}], Gate(atol=0.5)).passed
    missed = evaluate("generic", zeros, half, [{}], Gate(atol=0.25, min_cosine=0.9, min_snr_db=20))
    assert missed.failures == ["y: cosine 0.0000 < 0.9", "y: SNR -inf dB < 20"]


def test_generic_summary_names_the_worst_output():
    ref = [{"a": np.array([1.0, 1.0]), "b": np.array([1.0, 1.0])}]
    cand = [{"a": np.array([1.0, 1.0]), "b": np.array([1.1, 0.9])}]
    report = evaluate("generic", ref, cand, [{}], Gate())
    outputs = report.metrics["outputs"]
    assert outputs["a"]["snr_db"] == 999.0  # identical: infinite SNR, capped so that JSON can hold it
    assert outputs["b"]["snr_db"] == pytest.approx(20.0, abs=1e-9)
    assert report.summary() == f"worst output: cosine {outputs['b']['cosine']:.4f}, SNR 20.0 dB, max abs diff 0.1"


def test_an_all_zero_reference_has_no_snr_figure():
    """The SNR of an error against an all-zero fp32 output is -inf: stored as None (JSON has no -inf), and that
    output is the worst one the summary names."""
    ref = [{"a": np.array([1.0, 2.0]), "z": np.zeros(3)}]
    cand = [{"a": np.array([1.0, 2.0]), "z": np.array([0.0, 0.5, 0.0])}]
    report = evaluate("generic", ref, cand, [{}], Gate(atol=1e-3, min_cosine=0.9, min_snr_db=20))
    a, z = report.metrics["outputs"]["a"], report.metrics["outputs"]["z"]
    assert z["snr_db"] is None and z["snr_note"] == "the fp32 output is all zeros: no signal to compare the error with"
    assert a["snr_db"] == 999.0 and "snr_note" not in a
    assert report.summary() == "worst output: cosine 0.0000, SNR undefined (fp32 output all zeros), max abs diff 0.5"
    assert json.loads(json.dumps(report.to_json(), allow_nan=False))["metrics"]["outputs"]["z"]["snr_db"] is None


def test_snr_edge_cases():
    assert snr_db(np.ones(4), np.ones(4)) == float("inf")
    assert snr_db(np.zeros(4), np.zeros(4)) == 0.0
    assert snr_db(np.zeros(4), np.ones(4)) == float("-inf")
    assert snr_db(np.array([1.0, 1.0]), np.array([1.1, 0.9])) == pytest.approx(20.0, abs=1e-9)
    assert snr_db(np.array([3.0, 4.0]), np.array([3.0, 4.5])) == pytest.approx(10 * np.log10(25 / 0.25), abs=1e-9)


def test_worst_samples_orders_by_badness():
    report = GateReport("generic", True, {}, {}, badness=[0.1, 0.5, 0.0, 0.3])
    assert report.worst_samples(2) == [1, 3] and report.worst_samples(10) == [1, 3, 0, 2]


def test_kind_from_task_and_outputs():
    logits = [parse_spec("logits:float32[batch,10]")]
    hidden = [parse_spec("h:float32[batch,seq,384]")]
    assert kind_for(Gate(), "feature-extraction", hidden) == "embedding"
    assert kind_for(Gate(), "text-classification", logits) == "classifier"
    assert kind_for(Gate(), "image-classification", hidden) == "classifier"
    assert kind_for(Gate(), None, logits) == "classifier"
    assert kind_for(Gate(), None, [parse_spec("p:float32[batch,2]")]) == "classifier"
    assert kind_for(Gate(), None, [parse_spec("score:float32[batch,1]")]) == "generic"  # one column: a regression
    assert kind_for(Gate(), None, [parse_spec("y:float32[batch,classes]")]) == "generic"
    assert kind_for(Gate(), None, [parse_spec("y:float32[batch,4,8]")]) == "generic"
    assert kind_for(Gate(), None, logits + hidden) == "generic"  # two outputs: not a classifier
    assert kind_for(Gate(), None, hidden) == "generic"
    assert kind_for(Gate(kind="generic"), None, logits) == "generic"
    assert kind_for(Gate(kind="embedding"), "text-classification", logits) == "embedding"



@pytest.mark.parametrize("kind", ["classifier", "embedding", "generic"])
def test_non_finite_outputs_fail_every_gate_and_the_report_stays_json(kind):
    # a quantized DETR wrote inf and NaN logits (a full-int8 DIV): the gate must fail, by name,
    # and the report must still serialise (the manifest refuses NaN)
    cand = LOGITS.copy()
    cand[3] = [np.inf, np.nan, 0.0]
    report = evaluate(kind, _split(LOGITS), _split(cand), [{}] * 5, Gate())
    assert not report.passed and report.failures == ["logits: 2 value(s) inf or NaN where fp32 is finite"]
    assert report.worst_samples(1) == [3]
    json.dumps(report.to_json(), allow_nan=False)
    assert report.summary() == "non-finite outputs: logits (2 values)"
