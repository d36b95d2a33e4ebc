"""Choosing the next token from a row of logits: greedy, or seeded sampling with temperature,
top-k and top-p. numpy only, so that it runs on the device beside the runtime.

    >>> next_token(np.array([0.1, 2.0, 0.3]), Sampling(), np.random.default_rng(0))
    1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.core.errors import UsageError


@dataclass(frozen=True)
class Sampling:
    """``temperature`` 0 is greedy (the most likely token, always the same text); above 0 the
    logits are divided by it and a token is drawn among the ``top_k`` most likely (0: all) whose
    probabilities add up to ``top_p``, from a generator seeded with ``seed``."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.temperature) and self.temperature >= 0):
            raise UsageError(f"temperature must be >= 0, got {self.temperature}", hint="0 means greedy")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0, got {self.top_k}", hint="0 means no top-k cut")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


def next_token(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """The next token id from one row of logits (any float dtype)."""
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    if sampling.greedy:
        return int(np.argmax(row))
    row = row / sampling.temperature
    if 0 < sampling.top_k < row.size:
        keep = np.argpartition(row, -sampling.top_k)[-sampling.top_k:]
    else:
        keep = np.arange(row.size)
    scores = row[keep]
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if sampling.top_p < 1:
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        # the smallest set of tokens whose mass reaches top_p (the most likely token always stays)
        cut = int(np.searchsorted(cumulative, sampling.top_p)) + 1
        chosen = order[:cut]
        keep, probs = keep[chosen], probs[chosen] / probs[chosen].sum()
    return int(keep[rng.choice(keep.size, p=probs)])
