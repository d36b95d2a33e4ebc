"""Input and output signatures: names, dtypes, shapes with named dynamic axes, value ranges.

On the command line a spec reads ``name:dtype[dim,dim,...]`` with an optional value range
``:low..high``, e.g. ``pixels:float32[batch,1,8,8]:0..1`` or ``input_ids:int64[batch,seq]``.
A dimension that is a name is dynamic; the same name on two inputs is the same axis.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.core.errors import ConfigError, UsageError

DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "uint16", "bool")
Dim = int | str
BATCH_NAMES = ("batch", "batch_size", "n")  # a dynamic axis with one of these names is the batch axis
MAX_ELEMENTS = 1 << 31  # more elements than this in one fixed-shape tensor is not a small model's input
TEXT_LENGTH = 128  # tokens, when nothing says how long a text input is
GUESS = 32  # the size of an open axis nothing gives a size for: a guess, and said to be one

_SPEC = re.compile(
    r"^(?P<name>[A-Za-z_][\w.\-/]*):(?P<dtype>\w+)\[(?P<dims>[^\]]*)\](?::(?P<lo>-?[\d.e+-]+)\.\.(?P<hi>-?[\d.e+-]+))?$"
)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[Dim, ...]
    range: tuple[float, float] | None = None  # values to draw random inputs from
    layout: str | None = None  # e.g. "NCHW"; recorded for the runtime's adaptation
    finite: bool = False  # the runtime refuses NaN and infinity in this input

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.range is not None:
            out["range"] = list(self.range)
        if self.layout:
            out["layout"] = self.layout
        if self.finite:
            out["finite"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        rng = data.get("range")
        return cls(data["name"], data["dtype"], tuple(data["shape"]), tuple(rng) if rng else None, data.get("layout"),
                   bool(data.get("finite", False)))

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


def guess_layout(spec: TensorSpec) -> str | None:
    """NCHW for a 4-D float input shaped like [N, 1|3, H, W] with H, W larger than a channel
    count; None when unsure. A declared layout always wins over this guess."""
    if len(spec.shape) != 4 or not spec.dtype.startswith("float"):
        return None
    _, c, h, w = spec.shape
    if c in (1, 3) and all(not isinstance(d, int) or d > 4 for d in (h, w)):
        return "NCHW"
    return None


def parse_spec(text: str | dict[str, Any]) -> TensorSpec:
    """A spec from its command-line form or from a dict a factory returned."""
    if isinstance(text, dict):
        try:
            spec = TensorSpec.from_json(text)
        except (KeyError, TypeError) as exc:
            raise UsageError(f"bad input spec {text!r}: {exc}", hint="give name, dtype and shape") from exc
        _check_dtype(spec.dtype, str(text))
        return spec
    m = _SPEC.match(text.replace(" ", ""))
    if not m:
        raise UsageError(
            f"bad input spec '{text}'",
            hint="write it as name:dtype[dim,...], e.g. pixels:float32[batch,1,8,8] or ids:int64[batch,seq]:0..1000",
        )
    _check_dtype(m["dtype"], text)
    dims: list[Dim] = []
    for d in filter(None, m["dims"].split(",")):
        dims.append(int(d) if d.isdigit() else d)
    rng = (float(m["lo"]), float(m["hi"])) if m["lo"] is not None else None
    return TensorSpec(m["name"], m["dtype"], tuple(dims), rng)


def _check_dtype(dtype: str, text: str) -> None:
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype '{dtype}' in input spec '{text}'", hint=f"use one of {', '.join(DTYPES)}")


@dataclass
class DimSizes:
    """Concrete sizes for named dynamic axes: user's ``--dim`` first, then defaults."""

    given: dict[str, int] = field(default_factory=dict)

    def size(self, name: str, sample: int, axis: int = -1) -> int:
        if name in self.given:
            return self.given[name]
        # Vary the dynamic axes between samples so validation proves they really are dynamic.
        if is_batch(name, axis):
            return 1 + sample % 2
        return 32 * (1 + sample % 2)  # multiples of 32 suit strided CNNs and sequence models alike

    def shape(self, spec: TensorSpec, sample: int) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else self.size(d, sample, axis) for axis, d in enumerate(spec.shape))


def random_inputs(specs: list[TensorSpec], dims: DimSizes, sample: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One set of inputs drawn within each spec's range (or a sensible default)."""
    rng = np.random.default_rng(seed + sample)
    out = {}
    for spec in specs:
        shape = dims.shape(spec, sample)
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            out[spec.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            lo, hi = spec.range or (0, 10)
            out[spec.name] = rng.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
        else:
            lo, hi = spec.range or (-1.0, 1.0)
            out[spec.name] = rng.uniform(lo, hi, size=shape).astype(dtype)
    return out


def check_inputs(specs: list[TensorSpec], arrays: dict[str, np.ndarray], origin: str) -> None:
    """Refuse arrays whose names, ranks, fixed dims or dtypes do not fit the specs."""
    names = {s.name for s in specs}
    missing = names - set(arrays)
    if missing:
        raise UsageError(f"{origin}: no array for input(s) {', '.join(sorted(missing))}", hint=f"expected: {', '.join(sorted(names))}")
    for spec in specs:
        arr = arrays[spec.name]
        if len(arr.shape) != len(spec.shape) or any(
            isinstance(d, int) and d != n for d, n in zip(spec.shape, arr.shape)
        ):
            raise UsageError(f"{origin}: input '{spec.name}' has shape {list(arr.shape)}, expected {list(spec.shape)}")
        if arr.dtype != np.dtype(spec.dtype):
            raise UsageError(f"{origin}: input '{spec.name}' is {arr.dtype}, expected {spec.dtype}")


def is_batch(name: str, axis: int) -> bool:
    """Whether the dynamic axis ``name`` at position ``axis`` is a batch axis (the first one, or so named)."""
    return axis == 0 or name.lower() in BATCH_NAMES


def text_length(specs: list[TensorSpec], dims: DimSizes) -> int:
    """The sequence length text inputs are padded to: the ``--dim`` given for a non-batch axis of an
    integer input (token ids), else ``TEXT_LENGTH``."""
    for spec in specs:
        if not spec.dtype.startswith("int"):
            continue
        for axis, name in spec.dynamic_axes.items():
            if name in dims.given and not is_batch(name, axis):
                return dims.given[name]
    return TEXT_LENGTH


def check_spec_json(data: Any, where: str, key: str) -> None:
    """Refuse a spec as read from a manifest unless ``TensorSpec.from_json`` will take it whole:
    the error names the file (``where``), the key (``key``, e.g. ``inputs[0]``) and what was wrong."""
    def fail(sub: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: key '{key}{sub}' {message}")

    if not isinstance(data, dict):
        raise fail("", f"must be a table, got {type(data).__name__}")
    # "quantization": what a full-int8 TFLite artifact stores (its scale and zero point), for the reader
    unknown = set(data) - {"name", "dtype", "shape", "range", "layout", "finite", "quantization"}
    if unknown:
        raise fail(f".{sorted(unknown)[0]}", "is not a known key")
    name, dtype, shape = data.get("name"), data.get("dtype"), data.get("shape")
    if not isinstance(name, str) or not name:
        raise fail(".name", f"must be a non-empty string, got {name!r}")
    if dtype not in DTYPES:
        raise fail(".dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not isinstance(shape, list) or len(shape) > 8:
        raise fail(".shape", f"must be a list of at most 8 dimensions, got {shape!r}")
    elements = 1
    for i, d in enumerate(shape):
        if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, str) and not d) \
                or (isinstance(d, int) and not 0 <= d < MAX_ELEMENTS):
            raise fail(f".shape[{i}]", f"must be a size >= 0 or an axis name, got {d!r:.40}")
        elements *= d if isinstance(d, int) else 1
    if elements > MAX_ELEMENTS:
        raise fail(".shape", f"{shape} holds {elements} elements, beyond any small model's input")
    _check_range(data.get("range"), dtype, fail)
    layout = data.get("layout")
    if layout is not None and not (isinstance(layout, str) and layout.isalpha() and len(layout) == len(shape)
                                   and len(set(layout)) == len(layout)):
        raise fail(".layout", f"must name each of the {len(shape)} axes once, got {layout!r}")
    if not isinstance(data.get("finite", False), bool):
        raise fail(".finite", f"must be true or false, got {data['finite']!r}")
    quantization = data.get("quantization")
    if quantization is not None and not (
            isinstance(quantization, dict) and set(quantization) == {"scale", "zero_point"}
            and isinstance(quantization["scale"], (int, float)) and not isinstance(quantization["scale"], bool)
            and 0 < quantization["scale"] <= sys.float_info.max
            and isinstance(quantization["zero_point"], int) and not isinstance(quantization["zero_point"], bool)
            and -(1 << 31) <= quantization["zero_point"] < 1 << 31):
        raise fail(".quantization", f"must be {{scale > 0, zero_point}}, got {quantization!r:.80}")


def _check_range(rng: Any, dtype: str, fail: Any) -> None:
    # Random inputs are drawn from the range (numpy's uniform, or integers for an integer dtype),
    # so it must hold numbers numpy takes: finite floats, and for integers values the dtype holds.
    if rng is None:
        return
    numbers = isinstance(rng, list) and len(rng) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= sys.float_info.max for v in rng)
    if not numbers or rng[0] > rng[1]:
        raise fail(".range", f"must be [low, high] with finite low <= high, got {rng!r:.80}")
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        if not (info.min <= rng[0] and rng[1] <= info.max):
            raise fail(".range", f"must lie within {dtype} ({info.min}..{info.max}), got {rng!r:.80}")


def resolve_sizes(specs: list[TensorSpec], known: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """A size for every named axis of ``specs``: ``known`` first, a batch axis 1, else ``GUESS``.
    Returns the sizes and the names that were guessed, so that the caller can say so.

    >>> resolve_sizes([parse_spec("x:float32[batch,3,h,w]")], {"h": 320})
    ({'h': 320, 'batch': 1, 'w': 32}, ['w'])
    """
    sizes, guessed = dict(known), []
    for spec in specs:
        for axis, name in spec.dynamic_axes.items():
            if name in sizes:
                continue
            if is_batch(name, axis):
                sizes[name] = 1
            else:
                sizes[name] = GUESS
                guessed.append(name)
    return sizes, guessed
