"""Image files as input tensors: decoded with Pillow (the ``images`` extra), resized, scaled and
laid out as the input's spec says. Used by ``edge run`` on the device and by calibration data
at export, so both turn a picture into exactly the same array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import UsageError, require
from edge.core.specs import TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
