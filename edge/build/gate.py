"""The accuracy gate: does a quantized artifact stay within its budget against the fp32 one?

Runtime-agnostic: it takes the outputs both produced on the same evaluation samples, so the
ONNX and the TFLite paths share it. Three kinds of model, three measures:

- classifier: top-1 agreement with fp32 (and accuracy of both when labels are given);
  budget ``max_top1_drop`` in percentage points (accuracy drop with labels, else disagreement);
- embedding: cosine of each sample's embedding (masked mean over tokens when the output is
  [batch, sequence, hidden] and an ``attention_mask`` input exists); budget ``min_cosine``
  on the worst sample;
- generic: per output max-abs-diff, cosine and SNR; budget ``min_cosine`` and ``min_snr_db``,
  waived for an output whose every element is within ``atol`` (the cosine of ~zeros is noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.core.catalog import Gate
from edge.core.specs import TensorSpec
from edge.build.validate import Outputs, cosine

CLASSIFIER_TASKS = ("text-classification", "image-classification")
EMBEDDING_TASKS = ("feature-extraction",)


@dataclass
class GateReport:
    kind: str
    passed: bool
    metrics: dict[str, Any]
    budget: dict[str, float]
    failures: list[str] = field(default_factory=list)
    badness: list[float] = field(default_factory=list, repr=False)  # per sample, higher is worse

    def worst_samples(self, count: int) -> list[int]:
        """Indices of the samples that miss the most: where repair should look."""
        return sorted(range(len(self.badness)), key=lambda i: -self.badness[i])[:count]

    def summary(self) -> str:
        m = self.metrics
        if "non_finite" in m:
            return "non-finite outputs: " + ", ".join(f"{k} ({v} values)" for k, v in m["non_finite"].items())
        if self.kind == "classifier":
            text = f"top-1 agreement {m['top1_agreement']:.2f} %"
            if "accuracy" in m:
                text += f", accuracy {m['accuracy']:.2f} % (fp32 {m['reference_accuracy']:.2f} %)"
            return text
        if self.kind == "embedding":
            return f"cosine min {m['min_cosine']:.4f}, mean {m['mean_cosine']:.4f}"
        worst = min(m["outputs"].values(), key=lambda o: -np.inf if o["snr_db"] is None else o["snr_db"])
        snr = "undefined (fp32 output all zeros)" if worst["snr_db"] is None else f"{worst['snr_db']:.1f} dB"
        return f"worst output: cosine {worst['cosine']:.4f}, SNR {snr}, max abs diff {worst['max_abs_diff']:.3g}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "passed": self.passed, "metrics": self.metrics, "budget": self.budget,
                "failures": self.failures, "summary": self.summary()}


def kind_for(gate: Gate, task: str | None, outputs: list[TensorSpec]) -> str:
    """The gate kind: the profile's, else from the task, else from the outputs' shapes."""
    if gate.kind != "auto":
        return gate.kind
    if task in CLASSIFIER_TASKS:
        return "classifier"
    if task in EMBEDDING_TASKS:
        return "embedding"
    if len(outputs) == 1 and len(outputs[0].shape) == 2 and isinstance(outputs[0].shape[1], int) and outputs[0].shape[1] > 1:
        return "classifier"
    return "generic"


def evaluate(kind: str, reference: list[Outputs], candidate: list[Outputs], samples: list[dict[str, np.ndarray]],
             gate: Gate, labels: np.ndarray | None = None) -> GateReport:
    broken = _non_finite(reference, candidate)
    if broken:  # a quantized graph can overflow (a full-int8 DIV, a saturated exp): no metric means anything then
        failures = [f"{name}: {count} value(s) inf or NaN where fp32 is finite" for name, count in broken.items()]
        badness = [float(sum(int((~np.isfinite(np.asarray(v))).sum()) for v in c.values() if np.asarray(v).dtype.kind == "f"))
                   for c in candidate]
        return GateReport(kind, False, {"non_finite": broken}, {}, failures, badness)
    if kind == "classifier":
        return _classifier(reference, candidate, gate, labels)
    if kind == "embedding":
        return _embedding(reference, candidate, samples, gate)
    return _generic(reference, candidate, gate)


def _non_finite(reference: list[Outputs], candidate: list[Outputs]) -> dict[str, int]:
    """Per output, how many values are inf or NaN in the candidate where the reference is finite."""
    found: dict[str, int] = {}
    for ref, cand in zip(reference, candidate):
        for name, value in cand.items():
            value = np.asarray(value)
            if value.dtype.kind == "f":
                count = int((~np.isfinite(value) & np.isfinite(np.asarray(ref[name]))).sum())
                if count:
                    found[name] = found.get(name, 0) + count
    return found


def _first(outputs: list[Outputs]) -> np.ndarray:
    return np.concatenate([next(iter(o.values())) for o in outputs])


def _classifier(reference, candidate, gate: Gate, labels) -> GateReport:
    ref, cand = _first(reference).argmax(-1), _first(candidate).argmax(-1)
    agreement = float((ref == cand).mean() * 100)
    metrics: dict[str, Any] = {"top1_agreement": agreement, "samples": int(len(ref))}
    if labels is not None:
        metrics["reference_accuracy"] = float((ref == labels).mean() * 100)
        metrics["accuracy"] = float((cand == labels).mean() * 100)
        drop = metrics["reference_accuracy"] - metrics["accuracy"]
    else:
        drop = 100 - agreement
    metrics["top1_drop"] = drop
    failures = [f"top-1 drop {drop:.2f} pp > {gate.max_top1_drop:g}"] if drop > gate.max_top1_drop else []
    badness = [1.0 - cosine(r, c) for r, c in zip(_per_sample(reference), _per_sample(candidate))]
    return GateReport("classifier", not failures, metrics, {"max_top1_drop": gate.max_top1_drop}, failures, badness)


def _per_sample(outputs: list[Outputs]) -> list[np.ndarray]:
    return [np.concatenate([v.ravel() for v in o.values()]) for o in outputs]


def _pooled(hidden: np.ndarray, feeds: dict[str, np.ndarray]) -> np.ndarray:
    if hidden.ndim == 3 and "attention_mask" in feeds:
        mask = feeds["attention_mask"].astype(np.float64)[..., None]
        return (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return hidden.reshape(len(hidden), -1)


def _embedding(reference, candidate, samples, gate: Gate) -> GateReport:
    cosines, badness = [], []
    for ref, cand, feeds in zip(reference, candidate, samples):
        a, b = _pooled(next(iter(ref.values())), feeds), _pooled(next(iter(cand.values())), feeds)
        found = [cosine(x, y) for x, y in zip(a, b)]
        cosines += found
        badness.append(1.0 - min(found))
    metrics = {"min_cosine": float(min(cosines)), "mean_cosine": float(np.mean(cosines)), "samples": len(cosines)}
    failures = [f"min cosine {metrics['min_cosine']:.4f} < {gate.min_cosine:g}"] if metrics["min_cosine"] < gate.min_cosine else []
    return GateReport("embedding", not failures, metrics, {"min_cosine": gate.min_cosine}, failures, badness)


def snr_db(ref: np.ndarray, cand: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    noise = float(np.sum((ref - cand.astype(np.float64)) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0:
        return float("inf") if signal else 0.0
    return 10 * np.log10(signal / noise) if signal else float("-inf")


def _generic(reference, candidate, gate: Gate) -> GateReport:
    outputs, failures = {}, []
    for name in reference[0]:
        ref = np.concatenate([r[name].ravel() for r in reference])
        cand = np.concatenate([c[name].ravel() for c in candidate])
        snr = snr_db(ref, cand)
        # an all-zero fp32 output has no signal: its SNR is -inf dB (any error) or undefined, never a number to store
        o = {"max_abs_diff": float(np.max(np.abs(ref.astype(np.float64) - cand))), "cosine": cosine(ref, cand),
             "snr_db": min(snr, 999.0) if np.isfinite(snr) or snr > 0 else None}
        if o["snr_db"] is None:
            o["snr_note"] = "the fp32 output is all zeros: no signal to compare the error with"
        outputs[name] = o
        if o["max_abs_diff"] <= gate.atol:
            o["note"] = f"every element within atol {gate.atol:g} of fp32"
            continue
        if o["cosine"] < gate.min_cosine:
            failures.append(f"{name}: cosine {o['cosine']:.4f} < {gate.min_cosine:g}")
        if snr < gate.min_snr_db:
            failures.append(f"{name}: SNR {snr:.1f} dB < {gate.min_snr_db:g}")
    budget = {"min_cosine": gate.min_cosine, "min_snr_db": gate.min_snr_db, "atol": gate.atol}
    badness = [1.0 - cosine(r, c) for r, c in zip(_per_sample(reference), _per_sample(candidate))]
    return GateReport("generic", not failures, {"outputs": outputs}, budget, failures, badness)
