"""A causal language model to export: a transformers folder (safetensors + tokenizer) or a GGUF
file, loaded as a float32 torch module with its tokenizer, chat template and end-of-text ids.

transformers reads GGUF through the ``gguf`` package and dequantizes every block to float32;
the file's own blocks are kept aside for the quantized variants (``edge.build.llm.blocks``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core.bundle import hash_into
from edge.core.errors import InputNotFoundError, InvalidModelError, UnsupportedOpError, first_line, require

log = logging.getLogger(__name__)

# model_type -> what users call it; each is exported and checked token for token in the tests
ARCHITECTURES = {"llama": "Llama (SmolLM2)", "gemma3_text": "Gemma 3", "gemma3": "Gemma 3", "qwen2": "Qwen2",
                 "qwen3": "Qwen3", "gpt2": "GPT-2"}
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass
class CausalLM:
    module: Any  # transformers *ForCausalLM, float32, eval
    tokenizer_json: str  # the fast tokenizer, serialised
    chat_template: str | None
    eos: list[int]
    context: int
    source: dict[str, Any]  # kind, ref, sha256, architecture, parameters
    gguf: Path | None = None  # the GGUF file, whose blocks quantized variants may carry over
    tools: dict[str, str] = field(default_factory=dict)


def is_causal_lm(source: str) -> bool:
    """A .gguf file, or a transformers folder whose architecture ends in ForCausalLM / LMHeadModel."""
    path = Path(source)
    if path.suffix == ".gguf":
        return True
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def load(source: str) -> CausalLM:
    path = Path(source)
    if not path.exists():
        raise InputNotFoundError(f"no such file or folder: {source}", hint="check the path")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local file must never reach for a hub
    transformers = require("transformers")
    torch = require("torch")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if path.suffix == ".gguf":
        _check_gguf(path)
        args: dict[str, Any] = {"gguf_file": path.name}
        folder = path.parent
    else:
        _check_folder(path)
        args, folder = {}, path
    config = _config(transformers, folder, args)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch.float32, attn_implementation="eager", local_files_only=True, **args)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **args)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for bad files
        raise InvalidModelError(f"transformers cannot load {source}: {first_line(exc)}") from exc
    if path.suffix == ".gguf":  # loaded as floats: nothing of transformers' GGUF quantizer stays attached
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InvalidModelError(f"{source} has no fast tokenizer (tokenizer.json)",
                                hint="a bundle carries its tokenizer: save one with the model")
    eos = model.generation_config.eos_token_id if model.generation_config else None
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    parameters = sum(p.numel() for p in model.parameters())
    return CausalLM(
        module=model.eval(), tokenizer_json=backend.to_str(), chat_template=getattr(tokenizer, "chat_template", None),
        eos=eos, context=int(getattr(model.config, "max_position_embeddings", 0) or 2048),
        source={"kind": "gguf" if path.suffix == ".gguf" else "transformers", "ref": str(path), "sha256": _sha256(path),
                "architecture": config.model_type, "parameters": parameters, "task": "text-generation"},
        gguf=path if path.suffix == ".gguf" else None,
        tools={"transformers": transformers.__version__, "torch": torch.__version__},
    )


def _config(transformers: Any, folder: Path, args: dict[str, Any]) -> Any:
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True, **args)
    except Exception as exc:
        raise _unsupported_or_invalid(exc, folder, args) from exc
    if config.model_type not in ARCHITECTURES:
        raise UnsupportedOpError(f"edge cannot export the '{config.model_type}' architecture as a language model yet",
                                 hint=f"supported: {', '.join(sorted(set(ARCHITECTURES.values())))}")
    return config


def _unsupported_or_invalid(exc: Exception, folder: Path, args: dict[str, Any]) -> Exception:
    text = first_line(exc)
    if "not supported" in text or "architecture" in text.lower():  # transformers' GGUF loader names the architecture
        return UnsupportedOpError(f"transformers cannot read {args.get('gguf_file', folder)}: {text}",
                                  hint=f"supported: {', '.join(sorted(set(ARCHITECTURES.values())))}")
    return InvalidModelError(f"cannot read the model config of {args.get('gguf_file', folder)}: {text}")


def _check_gguf(path: Path) -> None:
    """Read the GGUF header and tensor table before transformers does: a truncated file is named."""
    gguf = require("gguf")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # gguf raises ValueError, struct.error, IndexError... on a damaged file
        raise InvalidModelError(f"{path.name} is not a readable GGUF file (truncated or damaged): {first_line(exc)}",
                                hint="copy or assemble the file again") from exc
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if end > path.stat().st_size:
        raise InvalidModelError(f"{path.name} is truncated: its tensors need {end} bytes, the file has {path.stat().st_size}")


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise InvalidModelError(f"{folder} is not a transformers model: it has no config.json")
    if not any((folder / w).is_file() for w in _WEIGHTS):
        raise InvalidModelError(f"{folder} has a config but no weights", hint=f"expected one of {', '.join(_WEIGHTS)}")
    if not (folder / "tokenizer.json").is_file():
        raise InvalidModelError(f"{folder} has no tokenizer.json", hint="a bundle carries its tokenizer: save it "
                                "with tokenizer.save_pretrained() beside the model")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for file in files:
        hash_into(digest, file)
    return digest.hexdigest()
