"""Weight-only, block-wise int8 and int4 for a decoder graph: onnxruntime's MatMulNBits (the
projections and the LM head) and GatherBlockQuantized (the embedding), through its own
``MatMulNBitsQuantizer``. Activations stay float: decoding one token reads every weight once,
so the bytes read, not the arithmetic, set the speed (docs/llm.md).

A tied LM head is exported as ``MatMul(x, Transpose(embedding))``: the quantizer only takes a
constant right-hand side, so ``untie`` stores the transposed weight first (the embedding keeps
its own, quantized as a Gather).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from edge.core.catalog import Variant
from edge.core.errors import ExportError, first_line, require

log = logging.getLogger(__name__)
ACCURACY_LEVEL = 4  # MatMulNBits computes with int8 activations where the CPU has a kernel for it


def untie(model: Any) -> int:
    """Replace ``Transpose(initializer)`` feeding a MatMul's weight by a transposed initializer; returns how many."""
    onnx = require("onnx")
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    done = 0
    for node in list(model.graph.node):
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        readers = users.get(node.output[0], [])
        if not readers or any(r.op_type != "MatMul" or r.input[1] != node.output[0] for r in readers):
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        weight = numpy_helper.to_array(inits[node.input[0]])
        if weight.ndim != 2 or perm not in (None, [1, 0]):
            continue
        model.graph.initializer.append(numpy_helper.from_array(weight.T.copy(), node.output[0]))
        model.graph.node.remove(node)
        done += 1
    onnx.checker.check_model(model)
    return done


def weight_only(fp32: Path, out: Path, variant: Variant, keep_float: list[str]) -> dict[str, Any]:
    """Write ``variant`` of the decoder at ``fp32`` to ``out``; ``keep_float`` names nodes left in float."""
    onnx = require("onnx")
    nbits = require("onnxruntime.quantization.matmul_nbits_quantizer")
    bits = 8 if variant.precision == "int8-weights" else 4
    model = onnx.load(str(fp32))
    untied = untie(model)
    ops = ("MatMul", "Gather")
    config = nbits.DefaultWeightOnlyQuantConfig(block_size=variant.block_size, is_symmetric=variant.symmetric,
                                                accuracy_level=ACCURACY_LEVEL, bits=bits, op_types_to_quantize=ops)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)  # the quantizer logs every node, and "Gather only supports 4 bits" at int8
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-zero block divides by a zero scale, harmlessly
            quantizer = nbits.MatMulNBitsQuantizer(model, bits=bits, block_size=variant.block_size,
                                                   is_symmetric=variant.symmetric, accuracy_level=ACCURACY_LEVEL,
                                                   nodes_to_exclude=list(keep_float), algo_config=config,
                                                   op_types_to_quantize=ops)
            quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
    except Exception as exc:
        raise ExportError(f"quantizing variant '{variant.name}' ({variant.precision}) failed: {first_line(exc)}") from exc
    finally:
        root.setLevel(level)
    kinds = sorted({n.op_type for n in quantizer.model.model.graph.node} & {"MatMulNBits", "GatherBlockQuantized"})
    return {"tool": _tool(), "mode": f"weight-only int{bits}, block {variant.block_size}, "
            f"{'symmetric' if variant.symmetric else 'asymmetric'} ({', '.join(kinds)})",
            "embedding": "quantized" if "GatherBlockQuantized" in kinds else "float (onnxruntime quantizes a Gather to 4 bits only)",
            "accuracy_level": ACCURACY_LEVEL, "activations": "float", "untied_lm_head": untied > 0,
            "kept_in_float": list(keep_float)}


def carried(fp32: Path, out: Path, gguf: Path, keep_float: list[str]) -> dict[str, Any]:
    """The 8-bit variant of a decoder exported from a GGUF file: the file's own blocks, carried over
    (``edge.build.llm.blocks``), instead of the floats rounded again."""
    onnx = require("onnx")
    from edge.build.llm import blocks

    model = onnx.load(str(fp32))
    untied = untie(model)
    try:
        info = blocks.carry(model, gguf, keep_float)
    except (ValueError, KeyError) as exc:
        raise ExportError(f"carrying the blocks of {gguf.name} over failed: {first_line(exc)}") from exc
    inits = {t.name for t in model.graph.initializer}
    left = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name not in keep_float
            and any(i in inits for i in n.input[1:])]
    onnx.save(model, str(out))
    return {"tool": f"edge GGUF blocks -> MatMulNBits / GatherBlockQuantized ({_tool().split(' (')[0]})",
            "mode": f"the GGUF's own blocks at 8 bits ({blocks.describe(info['carried'])})",
            "embedding": "quantized" if any(n.op_type == "GatherBlockQuantized" for n in model.graph.node) else "float",
            "accuracy_level": blocks.ACCURACY_LEVEL, "activations": "float", "untied_lm_head": untied > 0,
            "max_error_in_8bit_steps": info["max_error_in_8bit_steps"], "permuted_rows": info["permuted_rows"],
            "left_float": len(left), "kept_in_float": list(keep_float)}


def candidates(model: Any) -> list[str]:
    """The nodes weight-only quantization touches (MatMul and Gather on a constant weight)."""
    inits = {t.name for t in model.graph.initializer}
    transposed = {n.output[0] for n in model.graph.node if n.op_type == "Transpose" and n.input[0] in inits}
    out = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and (node.input[1] in inits or node.input[1] in transposed):
            out.append(node.name)
        elif node.op_type == "Gather" and node.input[0] in inits:
            out.append(node.name)
    return out


def weights(model: Any) -> dict[str, int]:
    """Node -> weight count (for the repair's give-back order: the costliest first)."""
    import math

    sizes = {t.name: math.prod(t.dims) for t in model.graph.initializer}
    source = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Transpose"}
    return {n.name: sum(sizes.get(source.get(i, i), 0) for i in n.input) for n in model.graph.node}


def _tool() -> str:
    import onnxruntime

    return f"onnxruntime.quantization {onnxruntime.__version__} (MatMulNBitsQuantizer)"
