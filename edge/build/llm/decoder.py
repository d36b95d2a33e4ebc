"""A causal LM as ONE ONNX decoder graph for both prefill and decode, through
``torch.onnx.export(dynamo=True)``.

The graph (names as ``edge.core.bundle.Generation`` says):
  in   input_ids [batch, seq] int64; attention_mask [batch, past + seq] int64 (1 = a real token);
       past.N.key / past.N.value [batch, kv_heads, past, head_dim] (past may be 0: the prefill);
       logits_positions [batch, n_out] int64: which of the ``seq`` positions get logits
       (the last one to generate, all of them to score a text);
  out  logits [batch, n_out, vocab]; present.N.key / present.N.value [batch, kv_heads, past + seq, head_dim].

Position ids are computed inside the graph from the mask as transformers' ``generate`` does
(cumsum - 1), so the runtime keeps only a growing mask. The cache is a transformers
``DynamicCache`` rebuilt from the flat tensors on every call with one plain layer per model
layer, Gemma's sliding-window layers included: the cache grows to the whole context and the
window is applied by the attention mask, which keeps every layer's shape alike and stays exact
at any length.
"""

from __future__ import annotations

import inspect
import io
import logging
from pathlib import Path
from typing import Any

from edge.core.errors import ExportError, first_line, require
from edge.exporters._torch import quiet

log = logging.getLogger(__name__)

PAST, PRESENT, POSITIONS = "past.{layer}.{kv}", "present.{layer}.{kv}", "logits_positions"


def kv_layout(model: Any) -> list[list[int]]:
    """[kv_heads, head_dim] per layer, read from one tiny eager forward (Gemma 3's head_dim is not
    hidden / heads; GPT-2 has as many kv heads as heads)."""
    torch = require("torch")
    with torch.no_grad():
        out = model(input_ids=torch.zeros(1, 2, dtype=torch.long), use_cache=True)
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    return [[int(layer.keys.shape[1]), int(layer.keys.shape[3])] for layer in cache.layers]


def wrapper(model: Any, layers: int) -> Any:
    """``model`` with the flat signature above."""
    torch = require("torch")
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    base, head = model.base_model, model.get_output_embeddings()
    cache_arg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    softcap = getattr(model.config, "final_logit_softcapping", None)

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base, self.head = base, head

        def forward(self, input_ids, attention_mask, logits_positions, past):
            cache = DynamicCache()
            cache.layers = []
            for i in range(layers):  # filled directly: no concatenation with an empty tensor to trace
                layer = DynamicLayer()
                layer.keys, layer.values = past[2 * i], past[2 * i + 1]
                layer.device, layer.is_initialized = layer.keys.device, True
                cache.layers.append(layer)
            positions = attention_mask.cumsum(-1) - 1  # as GenerationMixin prepares them
            positions = positions.masked_fill(attention_mask == 0, 0)[:, -input_ids.shape[1]:]
            out = self.base(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                            use_cache=True, **{cache_arg: cache})
            # the head only where logits are wanted: 1 of 128 prompt positions x 262 k words at prefill
            index = logits_positions.unsqueeze(-1).expand(-1, -1, out.last_hidden_state.shape[-1])
            logits = self.head(torch.gather(out.last_hidden_state, 1, index))
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            grown = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
            return (logits, *[t for layer in grown.layers for t in (layer.keys, layer.values)])

    return Decoder().eval()


def names(layers: int) -> tuple[list[str], list[str]]:
    """The graph's input and output names."""
    inputs = ["input_ids", "attention_mask", POSITIONS]
    outputs = ["logits"]
    for i in range(layers):
        inputs += [PAST.format(layer=i, kv=kv) for kv in ("key", "value")]
        outputs += [PRESENT.format(layer=i, kv=kv) for kv in ("key", "value")]
    return inputs, outputs


# Opset 23 has RMSNormalization and RotaryEmbedding: the Gemma 3 270M decoder graph shrinks from 1615
# to 775 nodes after onnxruntime's optimizations, and decodes about 15 % faster (docs/llm.md).
OPSET = 23


def export(model: Any, path: Path, opset: int) -> list[list[int]]:
    """Write the decoder graph of ``model`` (float32, eval) to ``path`` (weights beside it in
    ``path.data``); returns the cache layout."""
    torch = require("torch")
    from torch.export import Dim

    layout = kv_layout(model)
    batch, seq, past, total, out = Dim("batch"), Dim("seq"), Dim("past"), Dim("total"), Dim("n_out")
    example_batch, example_seq, example_past = 2, 5, 3  # not 0 or 1: torch.export specialises those
    vocab = int(getattr(model.config, "vocab_size", 100))
    args = (torch.randint(0, min(vocab, 100), (example_batch, example_seq)),
            torch.ones(example_batch, example_past + example_seq, dtype=torch.long),
            torch.tensor([[example_seq - 1]] * example_batch, dtype=torch.long),
            [torch.randn(example_batch, heads, example_past, dim) for heads, dim in layout for _ in range(2)])
    dynamic = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total}, "logits_positions": {0: batch, 1: out},
               "past": [{0: batch, 2: past} for _ in range(2 * len(layout))]}
    inputs, outputs = names(len(layout))
    chatter = io.StringIO()
    try:
        with torch.no_grad(), quiet(chatter):
            program = torch.onnx.export(wrapper(model, len(layout)), args, dynamo=True, dynamic_shapes=dynamic,
                                        input_names=inputs, output_names=outputs, opset_version=opset,
                                        optimize=True, external_data=True)
        program.save(str(path), external_data=True)
    except Exception as exc:  # torch.export raises many kinds, all of them the exporter's failure
        log.debug("torch.onnx said: %s", chatter.getvalue())
        cause = exc.__cause__ or exc  # torch.onnx wraps the real error in a three-step explanation
        raise ExportError(f"torch.onnx.export could not export the decoder: {first_line(cause)}",
                          hint="run with --debug for the full trace") from exc
    return layout
