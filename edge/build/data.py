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

from edge.core.errors import InputNotFoundError, UsageError, require
from edge.device.images import IMAGE_SUFFIXES, Preprocess, image_array
from edge.core.specs import DimSizes, TensorSpec, check_inputs, is_batch, random_inputs, text_length

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
    warning: str = SYNTHETIC_WARNING  # what a synthetic set's figures mean (and do not)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"origin": self.origin, "samples": len(self.samples), "labels": self.labels is not None}
        if self.synthetic:
            out["warning"] = self.warning
        return out


def varied(specs: list[TensorSpec], dims: DimSizes, count: int) -> Dataset:
    """Random inputs whose dynamic axes change between samples, for validating an export."""
    samples = [random_inputs(specs, dims, i) for i in range(count)]
    return Dataset(samples, None, f"random, {count} samples (seed 0, dynamic axes varied)", synthetic=True)


def synthetic(specs: list[TensorSpec], dims: DimSizes, count: int, seed: int) -> Dataset:
    fixed = DimSizes({**{n: 1 for s in specs for a, n in s.dynamic_axes.items() if is_batch(n, a)}, **dims.given})
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
    from edge.device.text import encode

    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise UsageError(f"{path} holds no sentences")
    if tokenizer_dir is None or not (tokenizer_dir / "tokenizer.json").is_file():
        raise UsageError(f"sentences in {path.name} need a tokenizer", hint="export from a transformers folder that has its tokenizer.json")
    seq = text_length(specs, dims)
    encoded = encode(tokenizer_dir / "tokenizer.json", lines, seq)
    missing = [s.name for s in specs if s.name not in encoded]
    if missing:
        raise UsageError(f"the tokenizer gives no {', '.join(missing)}", hint="give an .npz of input arrays instead")
    samples = [{s.name: encoded[s.name][i : i + 1].astype(s.dtype) for s in specs} for i in range(len(lines))]
    return Dataset(samples, None, f"{path.name}: {len(samples)} sentences, padded to {seq} tokens")


def with_seen(dims: DimSizes, specs: list[TensorSpec], datasets: list[Dataset | None]) -> DimSizes:
    """``dims`` plus the sizes the user's own data has on axes ``--dim`` left open, where they
    agree across every sample (synthetic data says nothing about the device's shape)."""
    given = dict(dims.given)
    for spec in specs:
        for axis, name in spec.dynamic_axes.items():
            sizes = {s[spec.name].shape[axis] for d in datasets if d is not None and not d.synthetic
                     for s in d.samples if spec.name in s}
            if name not in given and len(sizes) == 1:
                given[name] = sizes.pop()
    return DimSizes(given)
