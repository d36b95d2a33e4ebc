"""Calibration and evaluation data: an .npz of input arrays, a folder of images, or a text file.

Every form becomes a ``Dataset``: a list of input dicts (one per sample, batch 1 where the
batch axis is dynamic), optional labels, and a sentence saying where it came from. Without
data, ``synthetic`` draws inputs within the specs' ranges and says so: figures computed on
it are only a numerical comparison, never an accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import InputNotFoundError, UsageError, require
from edge.specs import DimSizes, TensorSpec, check_inputs, random_inputs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SYNTHETIC_WARNING = (
    "no data given: inputs are synthetic (random within the input ranges), so these figures are "
    "only a numerical comparison with the fp32 model, not a measure of task accuracy"
)


@dataclass
class Dataset:
    samples: list[dict[str, np.ndarray]]
    labels: np.ndarray | None  # one per sample (classification), or None
    origin: str
    synthetic: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"origin": self.origin, "samples": len(self.samples), "labels": self.labels is not None}
        if self.synthetic:
            out["warning"] = SYNTHETIC_WARNING
        return out


@dataclass(frozen=True)
class Preprocess:
    """How image files become an input tensor: ``(pixel * scale - mean) / std``, resized, laid out."""

    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @classmethod
    def parse(cls, text: str | None) -> Preprocess:
        if not text:
            return cls()
        values: dict[str, Any] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            try:
                if key == "scale" and sep:
                    values["scale"] = float(eval_fraction(value))
                elif key in ("mean", "std") and sep:
                    values[key] = tuple(float(v) for v in value.split("/"))
                else:
                    raise ValueError(key)
            except ValueError as exc:
                raise UsageError(f"bad --preprocess '{text}'", hint="write e.g. scale=1/255,mean=0.485/0.456/0.406,std=0.229/0.224/0.225") from exc
        return cls(**values)


def eval_fraction(text: str) -> float:
    num, sep, den = text.partition("/")
    return float(num) / float(den) if sep else float(num)


def varied(specs: list[TensorSpec], dims: DimSizes, count: int) -> Dataset:
    """Random inputs whose dynamic axes change between samples, for validating an export."""
    samples = [random_inputs(specs, dims, i) for i in range(count)]
    return Dataset(samples, None, f"random, {count} samples (seed 0, dynamic axes varied)", synthetic=True)


def synthetic(specs: list[TensorSpec], dims: DimSizes, count: int, seed: int) -> Dataset:
    fixed = DimSizes({**{n: 1 for s in specs for n in s.dynamic_axes.values() if _is_batch(n, s)}, **dims.given})
    samples = [random_inputs(specs, fixed, i, seed=seed) for i in range(count)]
    return Dataset(samples, None, f"synthetic: {count} random samples (seed {seed})", synthetic=True)


def load(path: Path, specs: list[TensorSpec], *, tokenizer_dir: Path | None, dims: DimSizes,
         preprocess: Preprocess) -> Dataset:
    """A dataset from ``path``: .npz, a folder of images, or a .txt of sentences."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"no such data file or folder: {path}")
    if path.is_dir():
        return _images(path, specs, preprocess)
    if path.suffix == ".npz":
        return _npz(path, specs)
    if path.suffix in (".txt", ".text"):
        return _sentences(path, specs, tokenizer_dir, dims)
    raise UsageError(f"cannot read data from {path.name}", hint="give an .npz of input arrays, a folder of images, or a .txt with one sentence a line")


def _is_batch(name: str, spec: TensorSpec) -> bool:
    return spec.shape and spec.shape[0] == name


def _split(arrays: dict[str, np.ndarray], specs: list[TensorSpec]) -> list[dict[str, np.ndarray]]:
    """Samples of batch 1 along a dynamic first axis; a fixed batch stays whole."""
    if not all(s.shape and isinstance(s.shape[0], str) for s in specs):
        return [arrays]
    count = len(next(iter(arrays.values())))
    return [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(count)]


def _npz(path: Path, specs: list[TensorSpec]) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path} is not a readable .npz file: {exc}") from exc
    labels = arrays.pop("labels", None)
    check_inputs(specs, arrays, str(path))
    samples = _split({s.name: arrays[s.name] for s in specs}, specs)
    if labels is not None and len(labels) != len(samples):
        raise UsageError(f"{path}: {len(labels)} labels for {len(samples)} samples")
    return Dataset(samples, labels, f"{path.name}: {len(samples)} samples" + (" with labels" if labels is not None else ""))


def image_array(path: Path, spec: TensorSpec, pre: Preprocess) -> np.ndarray:
    """One image file as a batch-1 input for ``spec`` (NCHW or NHWC, gray or RGB, resized)."""
    image = require("PIL.Image", "images", package="Pillow")
    if len(spec.shape) != 4:
        raise UsageError(f"input '{spec.name}' is not an image input (shape {list(spec.shape)})")
    channels_first = spec.shape[1] in (1, 3)
    c, h, w = (spec.shape[1:4] if channels_first else (spec.shape[3], spec.shape[1], spec.shape[2]))
    if not all(isinstance(d, int) for d in (c, h, w)):
        raise UsageError(f"input '{spec.name}' has dynamic image dims {list(spec.shape)}", hint="give an .npz instead")
    try:
        with image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB").resize((w, h))
            pixels = np.asarray(img, dtype=np.float32).reshape(h, w, c)
    except OSError as exc:
        raise UsageError(f"{path} is not a readable image: {exc}") from exc
    x = (pixels * pre.scale - np.array(pre.mean, np.float32)) / np.array(pre.std, np.float32)
    x = x.transpose(2, 0, 1) if channels_first else x
    return x[None].astype(spec.dtype)


def _images(folder: Path, specs: list[TensorSpec], pre: Preprocess) -> Dataset:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{folder} holds no images", hint=f"expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    if len(specs) != 1:
        raise UsageError("a folder of images needs a model with one image input", hint="give an .npz instead")
    classes = sorted({p.parent.name for p in files})
    labelled = len(classes) > 1 or files[0].parent != folder
    index = {name: (int(name) if name.isdigit() else i) for i, name in enumerate(classes)}
    samples = [{specs[0].name: image_array(p, specs[0], pre)} for p in files]
    labels = np.array([index[p.parent.name] for p in files]) if labelled else None
    origin = f"{folder.name}/: {len(files)} images" + (f" in {len(classes)} labelled folders" if labelled else "")
    return Dataset(samples, labels, origin)


def _sentences(path: Path, specs: list[TensorSpec], tokenizer_dir: Path | None, dims: DimSizes) -> Dataset:
    from edge.text import encode

    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise UsageError(f"{path} holds no sentences")
    if tokenizer_dir is None or not (tokenizer_dir / "tokenizer.json").is_file():
        raise UsageError(f"sentences in {path.name} need a tokenizer", hint="export from a transformers folder that has its tokenizer.json")
    seq = next((dims.given[n] for s in specs for n in s.dynamic_axes.values() if n in dims.given and not _is_batch(n, s)), 128)
    encoded = encode(tokenizer_dir / "tokenizer.json", lines, seq)
    missing = [s.name for s in specs if s.name not in encoded]
    if missing:
        raise UsageError(f"the tokenizer gives no {', '.join(missing)}", hint="give an .npz of input arrays instead")
    samples = [{s.name: encoded[s.name][i : i + 1].astype(s.dtype) for s in specs} for i in range(len(lines))]
    return Dataset(samples, None, f"{path.name}: {len(samples)} sentences, padded to {seq} tokens")
