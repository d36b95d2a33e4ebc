"""A GGUF file's own quantized blocks, carried over to onnxruntime's MatMulNBits as they are.

Re-rounding a GGUF model's dequantized floats to a new grid quantizes it twice (measured on Gemma
3 270M: +41 % perplexity at 4 bits). Here each GGUF block becomes a MatMulNBits block instead:

- Q8_0, Q4_0, Q5_0 and Q6_K store ``w = d * (q - z)`` with an integer z: 8-bit codes ``q`` with the
  same scale and zero point give the same weights, exactly.
- Q4_1, Q5_1, Q4_K and Q5_K store ``w = a * q + b`` (a scale and a float minimum). onnxruntime's
  CPU kernel takes float zero points only at 4 bits, where it was measured about 50x slower than
  with integer ones (docs/llm.md). So the codes are spread over 8 bits, ``q' = k * q + c``, with
  scale ``a / k`` and the integer zero point nearest to ``c - k * b / a``: for a 4-bit block k is
  17, and the weights are within 1/34 of the block's step of the file's.

Every weight is then 8 bits plus one float32 scale and one uint8 zero point per block of 32 (16
for Q6_K). Other GGUF types (F16, BF16, Q2_K, Q3_K, the IQ types) are left to the ordinary
quantizer and said so in the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import ExportError, require

QK_K = 256
ACCURACY_LEVEL = 4  # int8 activations inside MatMulNBits: without it the 8-bit kernel was 60x slower


@dataclass
class Blocks:
    """One tensor's blocks: ``w = scale * (q - zero)`` when ``zero`` holds integers (Q8_0, Q4_0,
    Q5_0, Q6_K), else ``w = scale * q + offset`` (Q4_1, Q5_1, Q4_K, Q5_K), per sub-block."""

    q: np.ndarray  # uint8 [rows, cols], 0..qmax
    scale: np.ndarray  # float32 [rows, cols // sub]
    zero: np.ndarray | None  # float32 [rows, cols // sub], integral; None for the formats with a minimum
    offset: np.ndarray | None  # float32 [rows, cols // sub] when zero is None
    sub: int
    qmax: int
    kind: str

    def weights(self) -> np.ndarray:
        """The floats this block decodes to, computed as ggml does."""
        rows, cols = self.q.shape
        q = self.q.reshape(rows, -1, self.sub).astype(np.float32)
        if self.zero is not None:
            w = self.scale[..., None] * (q - self.zero[..., None])
        else:
            w = self.scale[..., None] * q + self.offset[..., None]
        return w.reshape(rows, cols)

    def rows(self, order: np.ndarray) -> "Blocks":
        pick = (lambda a: None if a is None else a[order])
        return Blocks(self.q[order], self.scale[order], pick(self.zero), pick(self.offset), self.sub, self.qmax,
                      self.kind)


def _f16(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray, n: int) -> np.ndarray:
    """ggml's 4-bit packing for 32-element blocks: low nibbles are elements 0..15, high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1).reshape(n, -1)


def _high_bits(qh: np.ndarray, n: int) -> np.ndarray:
    bits = np.ascontiguousarray(qh).view(np.uint32).reshape(n, 1) >> np.arange(32, dtype=np.uint32)
    return (bits & 1).astype(np.uint8)


def _scale_min_k4(scales: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The eight 6-bit scales and minima of a Q4_K / Q5_K super-block (ggml's get_scale_min_k4)."""
    s = scales.reshape(n, 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc.astype(np.float32), mn.astype(np.float32)


def _decode(kind: str, blocks: np.ndarray) -> tuple:
    """Per block of the file: codes [n, elems]; scale, zero or offset [n, subs]; sub-block size; max code."""
    n = blocks.shape[0]
    if kind == "Q8_0":
        d = _f16(blocks[:, :2])
        q = (blocks[:, 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return q, d, np.full_like(d, 128.0), None, 32, 255
    if kind in ("Q4_0", "Q4_1"):
        d = _f16(blocks[:, :2])
        if kind == "Q4_0":
            return _nibbles(blocks[:, 2:], n), d, np.full_like(d, 8.0), None, 32, 15
        return _nibbles(blocks[:, 4:], n), d, None, _f16(blocks[:, 2:4]), 32, 15
    if kind in ("Q5_0", "Q5_1"):
        d = _f16(blocks[:, :2])
        start = 2 if kind == "Q5_0" else 4
        q = _nibbles(blocks[:, start + 4:], n) | (_high_bits(blocks[:, start:start + 4], n) << 4)
        if kind == "Q5_0":
            return q, d, np.full_like(d, 16.0), None, 32, 31
        return q, d, None, _f16(blocks[:, 2:4]), 32, 31
    if kind in ("Q4_K", "Q5_K"):
        d, dmin = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
        sc, mn = _scale_min_k4(blocks[:, 4:16], n)
        scale = d * sc
        rest = blocks[:, 16:]
        if kind == "Q4_K":
            qs, high = rest, None
        else:
            high, qs = rest[:, :QK_K // 8], rest[:, QK_K // 8:]
        q = qs.reshape(n, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
        q = (q & 0x0F).reshape(n, 8, 32)
        if high is not None:
            h = high.reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
            q = q | ((h & 1) << 4)
        return q.reshape(n, QK_K), scale, None, -(dmin * mn), 32, 15 if kind == "Q4_K" else 31
    if kind == "Q6_K":
        ql, qh = blocks[:, :QK_K // 2], blocks[:, QK_K // 2:QK_K // 2 + QK_K // 4]
        sc = blocks[:, QK_K // 2 + QK_K // 4:QK_K // 2 + QK_K // 4 + QK_K // 16].view(np.int8).astype(np.float32)
        d = _f16(blocks[:, -2:])
        low = ql.reshape(n, 2, 1, 64) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
        low = (low & 0x0F).reshape(n, 2, 4, 32)
        high = qh.reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
        q = (low | ((high & 3) << 4)).reshape(n, QK_K)
        return q, d * sc, np.full(sc.shape, 32.0, np.float32), None, 16, 63
    raise KeyError(kind)


KINDS = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")


def decode(kind: str, data: np.ndarray, rows: int, cols: int) -> Blocks:
    """The blocks of one GGUF tensor (``data`` as gguf's reader gives it: uint8 [rows, bytes])."""
    gguf = require("gguf")
    per, size = gguf.GGML_QUANT_SIZES[getattr(gguf.GGMLQuantizationType, kind)]
    raw = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, size)
    q, scale, zero, offset, sub, qmax = _decode(kind, raw)
    shape = (rows, cols // sub)
    fit = (lambda a: None if a is None else a.reshape(shape))
    return Blocks(q.reshape(rows, cols), scale.reshape(shape), fit(zero), fit(offset), sub, qmax, kind)


def to_uint8(b: Blocks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-bit codes [rows, blocks, sub], float32 scales and uint8 zero points for MatMulNBits."""
    rows = b.q.shape[0]
    q = b.q.reshape(rows, -1, b.sub).astype(np.int32)
    if b.zero is not None:  # integral zero points: the same codes, exactly
        return q.astype(np.uint8), b.scale.astype(np.float32), b.zero.astype(np.uint8)
    # w = a * q + b = (a / k) * ((k * q + c) - zero) with zero = round(c - k * b / a)
    a, off = b.scale.astype(np.float64), b.offset.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(a != 0, -off / a, np.nan)
    k = np.zeros(a.shape, np.int64)
    c = np.zeros(a.shape, np.int64)
    todo = np.isfinite(z)
    for factor in range(255 // b.qmax, 0, -1):  # the widest spread of the codes that keeps the zero in 0..255
        shift = np.maximum(0, np.ceil(-factor * np.nan_to_num(z) - 0.5)).astype(np.int64)
        fits = todo & (factor * b.qmax + shift <= 255) & (np.round(factor * np.nan_to_num(z) + shift) <= 255)
        k[fits], c[fits] = factor, shift[fits]
        todo &= ~fits
    spread = k > 0
    kk = np.maximum(k, 1)
    scale = np.where(spread, a / kk, 0.0)
    zero = np.where(spread, np.round(kk * np.nan_to_num(z) + c), 0.0)
    codes = q * kk[..., None] + c[..., None]
    rest = ~spread  # a zero scale, or a zero point out of reach: round the block's own floats to 8 bits
    if rest.any():
        w = a[..., None] * q + off[..., None]
        lo, hi = np.minimum(w.min(-1), 0.0), np.maximum(w.max(-1), 0.0)
        s = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
        zp = np.round(-lo / s)
        with np.errstate(divide="ignore", invalid="ignore"):  # widen the step so nothing is clipped
            s = np.maximum(s, np.maximum(np.where(zp < 255, hi / (255 - zp), 0), np.where(zp > 0, -lo / zp, 0)))
        u = np.clip(np.round(w / s[..., None] + zp[..., None]), 0, 255)
        codes = np.where(rest[..., None], u, codes)
        scale, zero = np.where(rest, s, scale), np.where(rest, zp, zero)
    return codes.astype(np.uint8), scale.astype(np.float32), zero.astype(np.uint8)


@dataclass
class Source:
    """The quantized 2-D tensors of a GGUF file, found by the float weights they decode to."""

    path: Path
    tensors: list[Any]
    _first: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> "Source":
        gguf = require("gguf")
        reader = gguf.GGUFReader(str(path))
        kept = [t for t in reader.tensors if len(t.shape) == 2 and t.tensor_type.name in KINDS]
        return cls(path, kept)

    def find(self, weight: np.ndarray) -> tuple[Any, np.ndarray | None] | None:
        """The tensor whose rows are ``weight``'s ([rows, cols]), and the row order if permuted."""
        gguf = require("gguf")
        rows, cols = weight.shape
        for t in self.tensors:
            if (int(t.shape[1]), int(t.shape[0])) != (rows, cols):
                continue
            if t.name not in self._first:  # dequantized once: its first column tells the candidates apart
                self._first[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(rows, cols)[:, 0].copy()
            if not np.array_equal(np.sort(self._first[t.name]), np.sort(weight[:, 0])):
                continue
            floats = gguf.quants.dequantize(t.data, t.tensor_type).reshape(rows, cols)
            if np.array_equal(floats, weight):
                return t, None
            order = _row_order(floats, weight)  # llama's q/k rows are permuted by the converter
            if order is not None:
                return t, order
        return None


def _row_order(floats: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """``order`` with ``floats[order] == weight``, or None when the rows are not the same set."""
    where = {row.tobytes(): i for i, row in enumerate(floats)}
    if len(where) != len(floats):
        return None
    order = np.array([where.get(row.tobytes(), -1) for row in weight])
    return None if (order < 0).any() else order


def matmul_nbits(node: Any, blocks: Blocks, graph: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """A MatMulNBits node (8 bits) computing the MatMul ``node`` from ``blocks`` ([N, K]), its
    initializers added to ``graph``, and the weights it computes with (to check against the graph's)."""
    from onnx import helper

    n, k = blocks.q.shape
    names, rebuilt, scale = _initializers(node.input[1], blocks, graph, packed=True)
    new = helper.make_node("MatMulNBits", [node.input[0], *names], list(node.output), name=f"{node.name}_{blocks.kind}",
                           domain="com.microsoft", K=k, N=n, bits=8, block_size=blocks.sub,
                           accuracy_level=ACCURACY_LEVEL)
    return new, rebuilt, scale


def gather_quantized(node: Any, blocks: Blocks, graph: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """A GatherBlockQuantized node (8 bits) looking rows up in ``blocks`` ([rows, N]) for the Gather ``node``."""
    from onnx import helper

    names, rebuilt, scale = _initializers(node.input[0], blocks, graph, packed=False)
    new = helper.make_node("GatherBlockQuantized", [names[0], node.input[1], *names[1:]], list(node.output),
                           name=f"{node.name}_{blocks.kind}", domain="com.microsoft", gather_axis=0,
                           quantize_axis=1, block_size=blocks.sub, bits=8)
    return new, rebuilt, scale


def _initializers(weight: str, blocks: Blocks, graph: Any, packed: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The codes, scales and zero points as initializers of ``graph``; their names, the weights they
    give, and the scales (the 8-bit step of each block)."""
    from onnx import numpy_helper

    codes, scale, zero = to_uint8(blocks)
    rows, cols = blocks.q.shape
    base = f"{weight}.gguf_{blocks.kind.lower()}"
    data = codes if packed else codes.reshape(rows, cols)  # MatMulNBits: [N, blocks, sub]; Gather: [rows, N]
    flat = (lambda a: a.reshape(-1)) if packed else (lambda a: a)
    graph.initializer.extend([numpy_helper.from_array(data, f"{base}.q"),
                              numpy_helper.from_array(flat(scale), f"{base}.scale"),
                              numpy_helper.from_array(flat(zero), f"{base}.zero")])
    rebuilt = scale[..., None] * (codes.astype(np.float32) - zero[..., None].astype(np.float32))
    return [f"{base}.q", f"{base}.scale", f"{base}.zero"], rebuilt.reshape(rows, cols), scale


def _axis(node: Any) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def carry(model: Any, path: Path, keep_float: list[str]) -> dict[str, Any]:
    """Replace, in ``model``, every MatMul whose weight decodes from a block of the GGUF at ``path``
    by a MatMulNBits on those blocks; returns what was carried for the recipe."""
    from onnx import numpy_helper

    source = Source.open(path)
    inits = {t.name: t for t in model.graph.initializer}
    replaced: set[str] = set()
    kinds: dict[str, int] = {}
    permuted = 0
    worst = 0.0
    for node in list(model.graph.node):
        gather = node.op_type == "Gather" and _axis(node) == 0
        name = node.input[0] if gather else node.input[1] if node.op_type == "MatMul" else None
        if name not in inits or node.name in keep_float:
            continue
        weight = numpy_helper.to_array(inits[name])  # MatMul: [K, N]; Gather: [rows, N]
        if weight.ndim != 2 or weight.shape[0 if not gather else 1] % 16:
            continue
        rows = weight if gather else np.ascontiguousarray(weight.T)
        found = source.find(rows)
        if found is None:
            continue
        tensor, order = found
        blocks = decode(tensor.tensor_type.name, tensor.data, *rows.shape)
        if order is not None:
            blocks = blocks.rows(order)
            permuted += 1
        make = gather_quantized if gather else matmul_nbits
        new, rebuilt, scale = make(node, blocks, model.graph)
        worst = max(worst, _steps(rebuilt, rows, scale, blocks.sub))
        if worst > 0.51:  # each weight must be the file's, to within half of its 8-bit step
            raise ExportError(f"GGUF tensor {tensor.name} ({tensor.tensor_type.name}): its 8-bit form is {worst:.2f} "
                              "steps away from the weights transformers decoded", hint="report this file's type")
        at = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(at, new)
        replaced.add(name)
        kinds[tensor.tensor_type.name] = kinds.get(tensor.tensor_type.name, 0) + 1
    readers = {name for n in model.graph.node for name in n.input}
    for name in replaced - readers:
        model.graph.initializer.remove(inits[name])
    return {"carried": kinds, "permuted_rows": permuted, "max_error_in_8bit_steps": round(worst, 4)}


def _steps(rebuilt: np.ndarray, weight: np.ndarray, scale: np.ndarray, sub: int) -> float:
    """The largest |rebuilt - weight|, in units of the 8-bit step (``scale``) of its block."""
    step = np.repeat(np.abs(scale), sub, axis=1)
    diff = np.abs(rebuilt - weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(step > 0, diff / step, np.where(diff > 0, np.inf, 0.0))
    return float(err.max()) if err.size else 0.0


def describe(carried: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(carried.items())) or "no tensor"
