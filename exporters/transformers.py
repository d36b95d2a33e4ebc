"""A Hugging Face transformers model in a local folder (config + weights), never from a hub.

Exported with ``torch.onnx.export(dynamo=True)`` like any PyTorch module; see
docs/decisions.md for why not optimum-onnx. The task comes from ``config.architectures``
or ``--task``; it picks the Auto class, the inputs and the outputs.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.bundle import hash_into
from edge.core.errors import ExportError, InvalidModelError, UsageError, require, first_line
from edge.exporters import _torch
from edge.exporters.base import Exported, ExportRequest
from edge.core.specs import TensorSpec


@dataclass(frozen=True)
class Task:
    auto_class: str
    outputs: tuple[str, ...]


TASKS = {
    "feature-extraction": Task("AutoModel", ("last_hidden_state",)),
    "text-classification": Task("AutoModelForSequenceClassification", ("logits",)),
    "token-classification": Task("AutoModelForTokenClassification", ("logits",)),
    "fill-mask": Task("AutoModelForMaskedLM", ("logits",)),
    "question-answering": Task("AutoModelForQuestionAnswering", ("start_logits", "end_logits")),
    "image-classification": Task("AutoModelForImageClassification", ("logits",)),
    "object-detection": Task("AutoModelForObjectDetection", ("logits", "pred_boxes")),
    "semantic-segmentation": Task("AutoModelForSemanticSegmentation", ("logits",)),
    "audio-classification": Task("AutoModelForAudioClassification", ("logits",)),
}
# Architecture-name suffix -> task, tried in order (``BertModel`` ends in ``Model``). An audio
# model's ``ForSequenceClassification`` (wav2vec2) classifies audio: the loaded class decides.
_SUFFIXES = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForMaskedLM", "fill-mask"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "semantic-segmentation"),
    ("ForAudioClassification", "audio-classification"),
    ("Model", "feature-extraction"),
)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


class TransformersExporter:
    name = "transformers"

    def accepts(self, source: str) -> bool:
        return Path(source).is_dir()

    def export(self, source: str, request: ExportRequest) -> Exported:
        folder = Path(source)
        config = _read_config(folder)
        task_name = request.task or infer_task(config, folder)
        if task_name not in TASKS:
            raise UsageError(f"unsupported task '{task_name}'", hint=f"supported: {', '.join(TASKS)}")
        task = TASKS[task_name]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never reach for a hub
        torch = require("torch")
        transformers = require("transformers")
        model = _load_model(transformers, task, folder, config)
        specs = request.inputs or _input_specs(model, task, folder)
        names = request.output_names or list(task.outputs)
        wrapped = _wrap(model, [s.name for s in specs], names)
        path = request.workdir / "model.onnx"
        _torch.export_module(wrapped, specs, names, request.dims, path, request.opset)
        return Exported(
            onnx_path=path,
            inputs=specs,
            outputs=[],
            reference=_torch.reference_runner(wrapped, specs, names),
            reference_name=f"torch {torch.__version__} (transformers {transformers.__version__})",
            source={
                "kind": "transformers", "ref": str(folder), "task": task_name,
                "architecture": (config.get("architectures") or ["?"])[0],
                "model_type": config.get("model_type"), "sha256": folder_sha256(folder),
            },
            tools={"torch": torch.__version__, "transformers": transformers.__version__},
            module=wrapped,
            build={"exporter": "torch.onnx.export(dynamo=True)", "attention": "eager"},
        )


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise InvalidModelError(
            f"{folder} is not a transformers model: it has no config.json",
            hint="point at the folder save_pretrained() wrote (config.json and model.safetensors)",
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidModelError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise InvalidModelError(f"{path} is not a transformers config: it has no model_type")
    if not any((folder / w).is_file() for w in _WEIGHTS):
        raise InvalidModelError(f"{folder} has a config but no weights", hint=f"expected one of {', '.join(_WEIGHTS)}")
    return config


def infer_task(config: dict[str, Any], folder: Path) -> str:
    for arch in config.get("architectures") or []:
        for suffix, task in _SUFFIXES:
            if arch.endswith(suffix):
                return task
    raise UsageError(f"cannot infer the task of {folder} from its config", hint=f"pass --task, one of {', '.join(TASKS)}")


def _load_model(transformers: Any, task: Task, folder: Path, config: dict[str, Any]) -> Any:
    """The class the config names when it has the task's head (the Auto classes map some
    model types to none, or to a text head for an audio model), else the task's Auto class."""
    named = [getattr(transformers, a, None) for a in config.get("architectures") or []]
    auto = next((c for c in named if c is not None and _has_head(c.__name__, task)), getattr(transformers, task.auto_class))
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        # Eager attention exports to plain MatMul/Softmax, which onnxruntime fuses (docs/decisions.md).
        model = auto.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager")
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for bad folders
        raise InvalidModelError(f"transformers cannot load {folder}: {first_line(exc)}") from exc
    return model.eval()


def _has_head(class_name: str, task: Task) -> bool:
    heads = [suffix for suffix, name in _SUFFIXES if TASKS[name] is task]
    if task is TASKS["audio-classification"]:
        heads.append("ForSequenceClassification")
    return any(class_name.endswith(h) for h in heads)


def _input_specs(model: Any, task: Task, folder: Path) -> list[TensorSpec]:
    """What the model's main input is decides the signature (``main_input_name``)."""
    config = model.config
    main = getattr(model, "main_input_name", "input_ids")
    if main == "pixel_values":
        size = getattr(config, "image_size", None)
        height, width = (size, size) if isinstance(size, int) else tuple(size) if size else ("height", "width")
        channels = getattr(config, "num_channels", 3)
        return [TensorSpec("pixel_values", "float32", ("batch", channels, height, width), (-1.0, 1.0), "NCHW")]
    if main == "input_features":  # Whisper's encoder: log-mel frames, as many as its positions allow
        frames = 2 * config.max_source_positions
        return [TensorSpec("input_features", "float32", ("batch", config.num_mel_bins, frames), (-1.0, 1.0))]
    if main == "input_values" and isinstance(getattr(config, "max_length", None), int) and hasattr(config, "num_mel_bins"):
        # a spectrogram transformer (AST): fixed frames x mel bins
        return [TensorSpec("input_values", "float32", ("batch", config.max_length, config.num_mel_bins), (-1.0, 1.0))]
    if main == "input_values":  # raw audio (wav2vec2, HuBERT): samples in -1..1
        return [TensorSpec("input_values", "float32", ("batch", "samples"), (-1.0, 1.0))]
    names = _tokenizer_inputs(folder) or ["input_ids", "attention_mask"]
    forward = inspect.signature(model.forward).parameters
    if "token_type_ids" in forward and getattr(config, "type_vocab_size", 0) and "token_type_ids" not in names:
        names.append("token_type_ids")
    ranges = {"input_ids": (0, config.vocab_size - 1), "attention_mask": (1, 1), "token_type_ids": (0, 0)}
    return [TensorSpec(n, "int64", ("batch", "sequence"), ranges.get(n, (0, 1))) for n in names]


def _tokenizer_inputs(folder: Path) -> list[str]:
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return []
    transformers = require("transformers")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # a broken tokenizer does not stop an export; the defaults apply
        return []
    return list(tokenizer.model_input_names)


def _wrap(model: Any, input_names: list[str], output_names: list[str]) -> Any:
    """A module that calls ``model`` with keyword inputs and returns the named outputs as a tuple."""
    torch = require("torch")

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):
            result = self.model(**dict(zip(input_names, args)))
            missing = [n for n in output_names if n not in result]
            if missing:
                raise ExportError(f"the model returns {list(result.keys())}, not {missing}", hint="pass --output NAME")
            return tuple(result[n] for n in output_names)

    return Outputs().eval()


def folder_sha256(folder: Path) -> str:
    """One hash over the folder's top-level files (names and contents), in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        hash_into(digest, path)
    return digest.hexdigest()
