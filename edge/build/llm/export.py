"""A causal language model in, a validated bundle out: the decoder graph in fp32, checked token
for token against the source, and weight-only int8/int4 variants through the shared gate and
repair, judged by perplexity and next-token agreement on evaluation text.

Called by ``edge.build.export.export`` when the source is a GGUF file or a causal-LM folder.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.build import variants
from edge.build.data import Dataset
from edge.build.llm import decoder, gate as lm_gate, quantize as lm_quantize
from edge.build.llm.source import CausalLM, load
from edge.core import catalog
from edge.core.bundle import SCHEMA_VERSION, Artifact, Generation, Manifest, sha256_file, staged, write_manifest
from edge.core.errors import UsageError, ValidationError, require
from edge.device.llm import Decoder, Generator
from edge.device.runtime import backend
from edge.device.sampling import Sampling

PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,",
           "The three primary colors are")
NEW_TOKENS = 32  # greedy tokens the fp32 artifact must reproduce, per prompt
MAX_PASSAGE = 128  # tokens of one evaluation passage
TOKENIZER = "tokenizer/tokenizer.json"
GGUF_INT4 = ("from a GGUF file the int8 variant carries the file's own blocks over; a 4-bit one would round "
             "them again (+41 % perplexity on Gemma 3 270M) or need float zero points, which onnxruntime's CPU "
             "kernel runs about 50x slower (docs/llm.md)")
ONNX_ONLY = ("language models are exported as ONNX only for now: a decoder with its KV cache needs LiteRT-LM's "
             "own runtime and format, not a .tflite the interpreter runs (docs/llm.md)")
SELF_TEXT_WARNING = ("no --eval-data: the variants are judged on the fp32 model's own greedy text, which it finds "
                     "easy; give a text file (one passage a line) to measure perplexity on real text")


def export(source: str, target: catalog.Target, profile: catalog.Profile, options: Any) -> Manifest:
    step = options.on_progress
    wanted = variants.wanted(profile, options.variants, options.formats)
    if any(v.format != "onnx" for v in wanted if v.precision in catalog.WEIGHT_ONLY) or "tflite" in options.formats:
        raise UsageError(ONNX_ONLY, hint="leave --format out, or --format onnx")
    step(f"loading {source} (transformers)")
    lm = load(source)
    with tempfile.TemporaryDirectory(prefix="edge-llm-") as tmp:
        work = Path(tmp)
        step("exporting the decoder (prefill and decode in one graph)")
        fp32 = work / "fp32.onnx"
        layout = decoder.export(lm.module, work / "exported.onnx", max(profile.opset, decoder.OPSET))
        _single_file(work / "exported.onnx", fp32)
        generation = Generation(kv=layout, context=lm.context, eos=lm.eos, tokenizer=TOKENIZER,
                                chat_template=lm.chat_template, positions=decoder.POSITIONS)
        step(f"validating: greedy {NEW_TOKENS} tokens from {len(PROMPTS)} prompts, against the source model")
        text = _tokenizer(lm, work)
        report = validate(lm, fp32, generation, text)
        if not report["passed"] and options.strict:
            raise ValidationError(f"the fp32 decoder does not reproduce the source's greedy tokens: {report['summary']}",
                                  hint="pass --no-strict to keep it anyway (marked FAILED)")
        outcome = _variants(wanted, profile, options, fp32, work, lm, generation, text)
        step(f"writing {options.output}")
        with staged(Path(options.output), options.force) as stage:
            manifest = _manifest(lm, target, profile, stage, fp32, report, outcome, generation, work)
            write_manifest(stage, manifest)
    return manifest


def validate(lm: CausalLM, fp32: Path, generation: Generation, text: Any) -> dict[str, Any]:
    """Greedy tokens of the fp32 artifact (the device's own loop) against transformers' ``generate``."""
    torch = require("torch")
    session = backend("onnxruntime").open(fp32)
    rows = []
    for prompt in PROMPTS:
        ids = text.encode(prompt)
        with torch.no_grad():
            out = lm.module.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                     max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1,
                                     pad_token_id=lm.eos[0] if lm.eos else 0)
        expected = out[0, len(ids):].tolist()
        got = generate_ids(session, generation, ids, NEW_TOKENS)
        first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), None)
        if first is None and len(expected) != len(got):
            first = min(len(expected), len(got))
        rows.append({"prompt": prompt, "tokens": len(expected), "equal": first is None, "first_difference": first})
    equal = sum(r["equal"] for r in rows)
    return {"passed": equal == len(rows), "reference": f"transformers generate (greedy), torch {torch.__version__}",
            "runtime": f"onnxruntime {backend('onnxruntime').version()}", "prompts": rows,
            "summary": f"{equal} of {len(rows)} prompts give the same {NEW_TOKENS} greedy tokens"}


def generate_ids(session: Any, generation: Generation, ids: list[int], count: int) -> list[int]:
    g = Generator(Decoder(session, generation), Sampling(), generation.eos, count)
    g.append(ids)
    while not g.done:
        g.next()
    return g.tokens


class LanguageLayers(variants.OnnxLayers):
    """Weight-only variants: MatMulNBits in place of the float MatMuls, kept float where repair says.
    Rebuilding a decoder takes seconds to a minute: only the largest layers are ranked."""

    shortlist = 6

    def __init__(self, ctx: variants.Context, variant: catalog.Variant, gguf: Path | None = None) -> None:
        import onnx

        model = onnx.load(str(ctx.fp32), load_external_data=False)
        self.ctx, self.variant, self.gguf = ctx, variant, gguf
        self.candidates = lm_quantize.candidates(model)
        self._weights = lm_quantize.weights(model)

    def make(self, out: Path, keep_float: list[str]) -> dict[str, Any]:
        if self.gguf is not None and self.variant.precision == "int8-weights":
            return lm_quantize.carried(self.ctx.fp32, out, self.gguf, keep_float)
        return lm_quantize.weight_only(self.ctx.fp32, out, self.variant, keep_float)

    def open(self, path: Path):
        return self.ctx.open(path)

    def suspects(self, path: Path, samples: list[dict[str, np.ndarray]]) -> list[str]:
        # the largest weights first: the LM head, the embedding, then the MLPs
        return sorted(self.candidates, key=lambda name: -self._weights.get(name, 0))


def _variants(wanted, profile, options, fp32: Path, work: Path, lm: CausalLM, generation: Generation,
              text: Any) -> variants.Outcome:
    outcome = variants.Outcome()
    reference = variants.reference_variant(profile)
    todo = [v for v in wanted if v != reference and v.precision in catalog.WEIGHT_ONLY]
    tflite = [v for v in wanted if v.format == "tflite"]
    outcome.skipped += [variants.skip(v, "not applicable: a language model gets weight-only int8/int4 variants")
                        for v in wanted if v != reference and v not in todo and v not in tflite]
    if tflite:  # the profile lists TFLite variants for other models: say once why this one has none
        outcome.skipped += [variants.skip(v, ONNX_ONLY) for v in tflite]
        outcome.notes.append(f"no TFLite artifacts: {ONNX_ONLY}")
    if lm.gguf is not None:  # its weights are already 4-5 bit blocks: rounding them again to 4 bits loses too much
        regrid = [v for v in todo if v.precision == "int4-weights"]
        todo = [v for v in todo if v not in regrid]
        outcome.skipped += [variants.skip(v, GGUF_INT4) for v in regrid]
    if not todo:
        return outcome
    gate = replace(profile.gate, **{k: v for k, v in options.gate.items() if v is not None})
    evaluation = _passages(options.eval_data, lm, text, generation, fp32)
    ctx = variants.Context(fp32, work, gate, "language-model", evaluation, evaluation, options.on_progress,
                           runner=lambda path: lm_gate.reduced(backend("onnxruntime").open(path).run))
    variants.build_all(todo, ctx, options.strict, outcome, layers_for=lambda v: LanguageLayers(ctx, v, lm.gguf))
    outcome.data = [evaluation]
    return outcome


def _passages(path: Path | None, lm: CausalLM, text: Any, generation: Generation, fp32: Path) -> Dataset:
    """Evaluation text, one passage a line; without it, the fp32 model's own greedy text (said so)."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            from edge.core.errors import InputNotFoundError

            raise InputNotFoundError(f"no such evaluation text: {path}")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        origin = f"{path.name}: {len(lines)} passages, at most {MAX_PASSAGE} tokens each"
        synthetic = False
    else:
        session = backend("onnxruntime").open(fp32)
        lines = [p + text.decode(generate_ids(session, generation, text.encode(p), 48)) for p in PROMPTS]
        origin = f"no --eval-data: the fp32 model's own greedy continuations of {len(lines)} prompts"
        synthetic = True
    ids = [text.encode(line)[:MAX_PASSAGE] for line in lines]
    samples = [lm_gate.feeds(i, generation.kv) for i in ids if len(i) >= 2]
    if not samples:
        raise UsageError(f"{path} holds no passage of two tokens or more")
    return Dataset(samples, None, origin, synthetic=synthetic, warning=SELF_TEXT_WARNING)


def _tokenizer(lm: CausalLM, work: Path) -> Any:
    from edge.device.llm import Text

    (work / "tokenizer").mkdir(exist_ok=True)
    (work / TOKENIZER).write_text(lm.tokenizer_json, encoding="utf-8")
    return Text(work, Generation(kv=[[1, 1]], context=1, tokenizer=TOKENIZER, chat_template=lm.chat_template))


def _single_file(path: Path, out: Path) -> None:
    """The exported graph with its weights inside (one file to hash and ship; under 2 GB)."""
    import onnx

    model = onnx.load(str(path))
    if model.ByteSize() >= (1 << 31) - 1:
        raise UsageError("the fp32 decoder is larger than 2 GB, which one ONNX file cannot hold",
                         hint="edge exports small language models (up to about 500 M parameters)")
    onnx.save(model, str(out))


def _manifest(lm: CausalLM, target, profile, stage: Path, fp32: Path, report: dict[str, Any],
              outcome: variants.Outcome, generation: Generation, work: Path) -> Manifest:
    import onnx

    (stage / "tokenizer").mkdir()
    shutil.copyfile(work / TOKENIZER, stage / TOKENIZER)
    opset = next(o.version for o in onnx.load(str(fp32), load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))
    reference = variants.reference_variant(profile)
    artifacts = [_artifact(stage, fp32, reference.name, "fp32", opset, {"exporter": "torch.onnx.export (dynamo)"},
                           report, None)]
    for b in outcome.built:
        artifacts.append(_artifact(stage, b.path, b.variant.name, b.variant.precision, opset,
                                   {"quantization": b.recipe}, {}, b.gate))
    io = _io(lm, generation)
    notes = list(outcome.notes) + ["latency: run 'edge profile' on the device (time to first token, tokens/s)"]
    if not report["passed"]:
        notes.insert(0, "validation FAILED and the bundle was kept because of --no-strict")
    order = [a.name for a in artifacts if a.name != reference.name] + [reference.name]  # smallest weights first
    return Manifest(
        schema_version=SCHEMA_VERSION, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=lm.source, target=target, profile=profile, inputs=io[0], outputs=io[1], artifacts=artifacts,
        tools={"edge": __version__, **lm.tools, "onnxruntime": backend("onnxruntime").version(), "onnx": onnx.__version__},
        skipped=outcome.skipped, notes=notes, evaluation=outcome.evaluation, preferred=order,
        preprocessing={}, generation=generation)


def _artifact(stage: Path, path: Path, name: str, precision: str, opset: int, build: dict, validation: dict,
              gate: dict | None) -> Artifact:
    file = f"model.{name}.onnx"
    shutil.copyfile(path, stage / file)
    return Artifact(name=name, format="onnx", path=file, size=(stage / file).stat().st_size,
                    sha256=sha256_file(stage / file), precision=precision, opset=opset, build=build,
                    validation=validation, gate=gate)


def _io(lm: CausalLM, generation: Generation) -> tuple[list[dict], list[dict]]:
    vocab = int(lm.module.config.vocab_size)
    inputs = [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"], "range": [0, vocab - 1]},
              {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "total"], "range": [1, 1]},
              {"name": decoder.POSITIONS, "dtype": "int64", "shape": ["batch", "positions"], "range": [0, 0]}]
    outputs = [{"name": "logits", "dtype": "float32", "shape": ["batch", "positions", vocab]}]
    for i, (heads, dim) in enumerate(generation.kv):
        for kv in ("key", "value"):
            inputs.append({"name": generation.past.format(layer=i, kv=kv), "dtype": "float32",
                           "shape": ["batch", heads, "past", dim]})
            outputs.append({"name": generation.present.format(layer=i, kv=kv), "dtype": "float32",
                            "shape": ["batch", heads, "total", dim]})
    return inputs, outputs
