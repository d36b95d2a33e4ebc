"""Choosing the next token: greedy, and seeded sampling whose frequencies match the probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from edge.core.errors import UsageError
from edge.device.sampling import Sampling, next_token

PROBS = np.array([0.1, 0.6, 0.25, 0.05])
LOGITS = np.log(PROBS)


def _frequencies(sampling: Sampling, logits=LOGITS, draws: int = 20000) -> np.ndarray:
    rng = sampling.rng()
    counts = np.bincount([next_token(logits, sampling, rng) for _ in range(draws)], minlength=len(logits))
    return counts / draws


def test_greedy_is_the_argmax_whatever_the_seed():
    for seed in (None, 0, 1):
        assert next_token(LOGITS, Sampling(seed=seed), np.random.default_rng(seed)) == 1
    assert next_token(np.array([3.0, -1.0, 3.5, 3.4], np.float16), Sampling(), np.random.default_rng()) == 2


def test_sampling_draws_with_the_model_probabilities():
    freq = _frequencies(Sampling(temperature=1.0, seed=0))
    assert np.abs(freq - PROBS).max() < 0.015
    # temperature 2 flattens: the draws follow softmax(logits / 2), not the raw probabilities
    flat = np.exp(LOGITS / 2) / np.exp(LOGITS / 2).sum()
    assert np.abs(_frequencies(Sampling(temperature=2.0, seed=1)) - flat).max() < 0.015


def test_top_k_and_top_p_cut_the_tail():
    assert set(np.flatnonzero(_frequencies(Sampling(temperature=1.0, top_k=2, seed=0), draws=3000))) == {1, 2}
    renormalised = np.array([0, 0.6, 0.25, 0]) / 0.85
    assert np.abs(_frequencies(Sampling(temperature=1.0, top_k=2, seed=3)) - renormalised).max() < 0.015
    # 0.6 alone does not reach 0.8, 0.6 + 0.25 does: tokens 1 and 2 only
    assert set(np.flatnonzero(_frequencies(Sampling(temperature=1.0, top_p=0.8, seed=0), draws=3000))) == {1, 2}
    assert set(np.flatnonzero(_frequencies(Sampling(temperature=1.0, top_p=0.5, seed=0), draws=500))) == {1}
    assert next_token(LOGITS, Sampling(temperature=5.0, top_k=1, seed=0), np.random.default_rng(0)) == 1


def test_a_seed_repeats_the_same_tokens():
    def run(seed):
        sampling = Sampling(temperature=0.9, top_p=0.95, seed=seed)
        rng = sampling.rng()
        return [next_token(LOGITS, sampling, rng) for _ in range(50)]

    assert run(7) == run(7) and run(7) != run(8)


@pytest.mark.parametrize("kwargs", [{"temperature": -0.1}, {"temperature": float("nan")}, {"top_k": -1},
                                    {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_settings_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        Sampling(**kwargs)
