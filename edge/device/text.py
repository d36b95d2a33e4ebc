"""Sentences to model inputs with the model's own ``tokenizer.json`` (the ``tokenizers`` package).

The same code tokenizes calibration text at export and ``edge run --text`` on the device,
so both see exactly the same ids.

    >>> encode(Path("build/minilm/tokenizer/tokenizer.json"), ["a small model"], 128)  # doctest: +SKIP
    {'input_ids': array([[ 101, 1037, 2235, 2944,  102, 0, ...]]), 'attention_mask': ..., 'token_type_ids': ...}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.core.errors import InvalidModelError, require


def encode(tokenizer_json: Path, sentences: list[str], max_length: int) -> dict[str, np.ndarray]:
    tokenizers = require("tokenizers", "text")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    except Exception as exc:  # the Rust side raises a bare Exception
        raise InvalidModelError(f"{tokenizer_json} is not a readable tokenizer: {exc}") from exc
    pad = tokenizer.padding or {}
    tokenizer.enable_padding(length=max_length, pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
    tokenizer.enable_truncation(max_length=max_length)
    encodings = tokenizer.encode_batch(sentences)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
