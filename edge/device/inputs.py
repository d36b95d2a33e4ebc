"""Raw inputs for ``edge run``: an .npz or .npy of arrays, an image file, or sentences.

Images and text are turned into arrays the way the bundle's manifest declares
(``preprocessing``), with the bundle's own tokenizer for text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import InputNotFoundError, UsageError
from edge.device.model import Model


def from_file(path: Path, model: Model, preprocessing: dict[str, Any]) -> dict[str, np.ndarray]:
    from edge.device import images

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files if k != "labels"}
    if suffix == ".npy":
        if len(model.inputs) != 1:
            raise UsageError(f"{path.name} holds one array; the model takes {len(model.inputs)} inputs", hint="give an .npz")
        return {model.inputs[0].name: np.load(path, allow_pickle=False)}
    if suffix in images.IMAGE_SUFFIXES:
        image = preprocessing.get("image", {})
        pre = images.Preprocess(image.get("scale", 1 / 255), tuple(image.get("mean", (0.0,))), tuple(image.get("std", (1.0,))))
        return {model.inputs[0].name: images.image_array(path, model.inputs[0], pre)}
    raise UsageError(f"cannot read inputs from {path.name}", hint="give an .npz, an .npy, an image, or --text")


def from_text(sentences: list[str], model: Model, bundle: Path, preprocessing: dict[str, Any]) -> dict[str, np.ndarray]:
    from edge.device.text import encode

    text = preprocessing.get("text")
    if not text:
        raise UsageError("this bundle carries no tokenizer, so it cannot take --text", hint="give --input FILE.npz")
    encoded = encode(bundle / text["tokenizer"], sentences, text["max_length"])
    return {s.name: encoded[s.name].astype(s.dtype) for s in model.inputs}
