"""Small language models on the device: ``generate``, ``stream`` and ``score`` over one ONNX
decoder graph, with numpy, onnxruntime and ``tokenizers`` only (no torch, no transformers).

    >>> model = edge.load("build/gemma")                          # doctest: +SKIP
    >>> model.generate("The capital of France is", max_new_tokens=16)   # doctest: +SKIP
    ' Paris. It is the largest city in France ...'
    >>> for piece in model.stream("Write a haiku", chat=True): print(piece, end="")  # doctest: +SKIP

The graph takes ``input_ids [1, n]``, ``attention_mask [1, past + n]`` and the cache of every
layer (``past.N.key``/``past.N.value``, ``[1, kv_heads, past, head_dim]``) and returns the
logits of the last position and the grown cache (``present.N.*``): one call reads the prompt
(prefill), then one call per generated token (decode). ``Generator`` is that loop in small steps
a caller can drive (onnxruntime-genai's shape); ``generate`` and ``stream`` are built on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.bundle import Generation
from edge.core.errors import InvalidModelError, UsageError, require
from edge.device.sampling import Sampling, next_token
from edge.device.textstream import TextStream


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each target under its row of logits (a stable log-softmax)."""
    top = logits.max(-1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
    return log_z - logits[np.arange(len(targets)), targets]


class Decoder:
    """The session and its cache for one sequence (batch 1)."""

    def __init__(self, session: Any, generation: Generation) -> None:
        self.session, self.g = session, generation
        self.dtype = np.dtype(generation.cache_dtype)
        self.reset()

    def reset(self) -> None:
        self.cache = {name: np.zeros((1, heads, 0, dim), self.dtype)
                      for i, (heads, dim) in enumerate(self.g.kv) for name in self._names(self.g.past, i)}
        self.length = 0

    def _names(self, pattern: str, layer: int) -> tuple[str, str]:
        return pattern.format(layer=layer, kv="key"), pattern.format(layer=layer, kv="value")

    def forward(self, ids: Sequence[int], positions: np.ndarray | None = None) -> np.ndarray:
        """Feed ``ids`` after what the cache holds; returns the logits (last position, or ``positions``)."""
        if self.length + len(ids) > self.g.context:
            raise UsageError(f"{self.length + len(ids)} tokens do not fit this model's context of {self.g.context}",
                             hint="shorten the prompt or ask for fewer new tokens")
        feeds = {"input_ids": np.asarray([ids], np.int64),
                 "attention_mask": np.ones((1, self.length + len(ids)), np.int64), **self.cache}
        if self.g.positions:  # logits where asked, else for the last position only
            wanted = positions if positions is not None else np.array([len(ids) - 1])
            feeds[self.g.positions] = wanted.reshape(1, -1).astype(np.int64)
        out = self.session.run(feeds)
        for i in range(len(self.g.kv)):
            for past, present in zip(self._names(self.g.past, i), self._names(self.g.present, i)):
                self.cache[past] = out[present]
        self.length += len(ids)
        logits = out["logits"][0]
        return logits if positions is not None else logits[-1]


class Generator:
    """Generation one step at a time: ``append`` tokens (the prompt), then ``next`` until ``done``.

    >>> g = model.generator(Sampling(temperature=0.7, seed=1))   # doctest: +SKIP
    >>> g.append(model.encode("Hello"))                           # doctest: +SKIP
    >>> while not g.done: token = g.next()                        # doctest: +SKIP
    """

    def __init__(self, decoder: Decoder, sampling: Sampling, eos: Sequence[int], max_new_tokens: int) -> None:
        decoder.reset()
        self._decoder, self._sampling, self._rng = decoder, sampling, sampling.rng()
        self._eos, self._left = set(eos), max_new_tokens
        self._logits: np.ndarray | None = None
        self.tokens: list[int] = []  # generated so far
        self.done = max_new_tokens <= 0

    def append(self, ids: Sequence[int]) -> None:
        """Read ``ids`` (a prompt, or tokens the caller forces); the next token follows them."""
        if not ids:
            raise UsageError("nothing to append: the prompt encodes to no token")
        self._logits = self._decoder.forward(list(ids))

    def next(self) -> int:
        """Choose the next token and feed it back; ``done`` turns true at EOS or the token budget."""
        if self._logits is None:
            raise UsageError("append a prompt before asking for the next token")
        if self.done:
            raise UsageError("generation is done")
        token = next_token(self._logits, self._sampling, self._rng)
        self.tokens.append(token)
        self._left -= 1
        self.done = token in self._eos or self._left == 0
        if not self.done:
            self._logits = self._decoder.forward([token])
        return token


class Text:
    """The bundle's tokenizer (``tokenizers``, the ``text`` extra) and the model's chat template."""

    def __init__(self, bundle: Path, generation: Generation) -> None:
        tokenizers = require("tokenizers", "text")
        path = Path(bundle) / generation.tokenizer
        if not path.is_file():
            raise InvalidModelError(f"bundle {bundle} has no tokenizer at {generation.tokenizer}",
                                    hint="re-export it from a folder or GGUF that carries its tokenizer")
        try:
            self._tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise InvalidModelError(f"{path} is not a readable tokenizer: {exc}") from exc
        self._template = generation.chat_template

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=True).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def chat(self, prompt: str) -> list[int]:
        """The prompt as the model's one-turn chat, ready for its answer."""
        if not self._template:
            raise UsageError("this model has no chat template", hint="leave out --chat (chat=True)")
        jinja = require("jinja2.sandbox", "text", package="jinja2")

        def fail(message: str) -> None:
            raise UsageError(f"the chat template refused the prompt: {message}")

        env = jinja.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = fail
        text = env.from_string(self._template).render(
            messages=[{"role": "user", "content": prompt}], add_generation_prompt=True,
            bos_token=self._tokenizer.id_to_token(self.encode("")[0]) if self.encode("") else "")
        # the template writes the BOS token itself: encode without adding another
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)


class LanguageModel:
    """What ``edge.load`` returns for a language-model bundle: ``generate``, ``stream``, ``score``.

    >>> model = edge.load("build/gemma")                                   # doctest: +SKIP
    >>> model.generate("The capital of France is", max_new_tokens=8)       # doctest: +SKIP
    >>> model.score("A sentence to rank.")   # mean negative log-likelihood per token  # doctest: +SKIP
    """

    def __init__(self, model: Any, bundle: Path, generation: Generation) -> None:
        self.model = model  # the edge.Model underneath (its session, choice, inputs)
        self.choice = model.choice
        self.generation = generation
        self.text = Text(bundle, generation)
        self._decoder = Decoder(model.session, generation)

    def __repr__(self) -> str:
        return f"<edge.LanguageModel {self.choice.artifact} on {self.choice.runtime}, {self.choice.threads} threads>"

    def encode(self, prompt: str, chat: bool = False) -> list[int]:
        return self.text.chat(prompt) if chat else self.text.encode(prompt)

    def generator(self, sampling: Sampling = Sampling(), max_new_tokens: int = 64) -> Generator:
        """A ``Generator`` over this model: ``append`` a prompt's ids, then ``next`` token by token."""
        return Generator(self._decoder, sampling, self.generation.eos, max_new_tokens)

    def stream(self, prompt: str, max_new_tokens: int = 64, *, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] = (), chat: bool = False) -> Iterator[str]:
        """Text pieces as they are decoded. Greedy by default; ``temperature`` > 0 samples (seeded by ``seed``).

        >>> for piece in model.stream("Once upon a time", max_new_tokens=32): print(piece, end="")  # doctest: +SKIP
        """
        if max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        ids = self.encode(prompt, chat)
        if len(ids) + max_new_tokens > self.generation.context:
            raise UsageError(f"the prompt is {len(ids)} tokens and {max_new_tokens} more were asked for; this model "
                             f"takes {self.generation.context} tokens in all", hint="shorten the prompt or ask for fewer tokens")
        g = self.generator(Sampling(temperature, top_k, top_p, seed), max_new_tokens)
        g.append(ids)
        stream = TextStream(self.text.decode, stop)
        while not g.done and not stream.stopped:
            token = g.next()
            if token in self.generation.eos:
                break
            piece = stream.push(token)
            if piece:
                yield piece
        tail = stream.flush()
        if tail:
            yield tail

    def generate(self, prompt: str, max_new_tokens: int = 64, **options: Any) -> str:
        """The generated text (without the prompt); the options are ``stream``'s.

        >>> model.generate("The capital of France is", max_new_tokens=16)   # doctest: +SKIP
        """
        return "".join(self.stream(prompt, max_new_tokens, **options))

    def score(self, text: str) -> float:
        """Mean negative log-likelihood per token of ``text`` under the model (lower: more likely).

        >>> model.score("The cat sat on the mat.") < model.score("Mat the on sat cat the.")  # doctest: +SKIP
        True
        """
        ids = self.text.encode(text)
        if len(ids) < 2:
            raise UsageError("a text to score needs at least two tokens")
        if len(ids) > self.generation.context:
            raise UsageError(f"the text is {len(ids)} tokens; this model takes at most {self.generation.context}")
        self._decoder.reset()
        if self.generation.positions:  # every position's logits in one call
            logits = self._decoder.forward(ids, positions=np.arange(len(ids) - 1))
        else:
            logits = np.stack([self._decoder.forward([t]) for t in ids[:-1]])
        return float(np.mean(token_nll(logits.astype(np.float64), np.asarray(ids[1:]))))
