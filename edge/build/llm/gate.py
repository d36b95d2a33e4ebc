"""The accuracy gate of a language model: perplexity and next-token agreement on evaluation text.

Each passage is read in one call of the decoder (teacher forcing: logits at every position),
reduced at once to the negative log-likelihood of each next token and the most likely token,
so that 262 k-word logits never pile up in memory. A variant passes when its perplexity is at
most ``max_perplexity_increase`` % above the fp32 artifact's and its most likely next token
agrees with fp32's at ``min_next_token_agreement`` % of the positions or more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edge.build.gate import GateReport
from edge.core.catalog import Gate
from edge.device.llm import token_nll

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def feeds(ids: list[int], kv: list[list[int]]) -> dict[str, np.ndarray]:
    """The decoder's inputs to read ``ids`` from an empty cache, with logits at every position
    but the last (each one predicts the next token)."""
    cache = {f"past.{i}.{kv_name}": np.zeros((1, heads, 0, dim), np.float32)
             for i, (heads, dim) in enumerate(kv) for kv_name in ("key", "value")}
    return {"input_ids": np.asarray([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
            "logits_positions": np.arange(len(ids) - 1, dtype=np.int64)[None], **cache}


def reduced(run: Runner) -> Runner:
    """``run`` whose outputs are only ``nll`` (per next token) and ``top1`` (the most likely one)."""

    def call(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        logits = run(sample)["logits"][0].astype(np.float32)
        targets = sample["input_ids"][0, 1:]
        nll = token_nll(logits, targets)  # the same function model.score uses on the device
        return {"nll": nll.astype(np.float64), "top1": logits.argmax(-1)}

    return call


def evaluate(reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]], gate: Gate) -> GateReport:
    ref_nll = np.concatenate([r["nll"] for r in reference])
    cand_nll = np.concatenate([c["nll"] for c in candidate])
    agree = np.concatenate([r["top1"] == c["top1"] for r, c in zip(reference, candidate)])
    increase = float((np.exp(cand_nll.mean() - ref_nll.mean()) - 1) * 100)
    metrics: dict[str, Any] = {
        "nll": float(cand_nll.mean()), "reference_nll": float(ref_nll.mean()),
        "perplexity": float(np.exp(cand_nll.mean())), "reference_perplexity": float(np.exp(ref_nll.mean())),
        "perplexity_increase_pct": increase, "next_token_agreement_pct": float(agree.mean() * 100),
        "tokens": int(ref_nll.size), "passages": len(reference)}
    failures = []
    if increase > gate.max_perplexity_increase:
        failures.append(f"perplexity +{increase:.2f} % > {gate.max_perplexity_increase:g} %")
    if metrics["next_token_agreement_pct"] < gate.min_next_token_agreement:
        failures.append(f"next-token agreement {metrics['next_token_agreement_pct']:.1f} % "
                        f"< {gate.min_next_token_agreement:g} %")
    badness = [float(c["nll"].mean() - r["nll"].mean()) for r, c in zip(reference, candidate)]
    budget = {"max_perplexity_increase": gate.max_perplexity_increase,
              "min_next_token_agreement": gate.min_next_token_agreement}
    return LanguageGateReport("language-model", not failures, metrics, budget, failures, badness)


class LanguageGateReport(GateReport):
    def summary(self) -> str:
        m = self.metrics
        return (f"perplexity {m['perplexity']:.3f} vs fp32 {m['reference_perplexity']:.3f} "
                f"({m['perplexity_increase_pct']:+.2f} %), next-token agreement {m['next_token_agreement_pct']:.1f} % "
                f"over {m['tokens']} tokens")
