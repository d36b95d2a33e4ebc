"""A GGUF file's blocks carried over to MatMulNBits / GatherBlockQuantized: decoded exactly as the
gguf package's reference dequantizer does, and the rewritten graph computes what the float graph
did in onnxruntime (to the int8 activations of accuracy level 4)."""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
onnx = pytest.importorskip("onnx")

from edge.build.llm import blocks as B  # noqa: E402

INTEGRAL = {"Q8_0", "Q4_0", "Q5_0", "Q6_K"}  # w = d * (q - z) with z an integer: carried exactly


def random_blocks(kind, rows, cols, rng):
    """Valid blocks of ``kind``: random bytes, with finite, small float16 scales and minima."""
    qtype = getattr(gguf.GGMLQuantizationType, kind)
    per, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows * cols // per, size), dtype=np.uint8)
    halves = lambda: rng.uniform(-0.05, 0.05, len(raw)).astype(np.float16).view(np.uint8).reshape(-1, 2)  # noqa: E731
    if kind == "Q6_K":
        raw[:, -2:] = halves()
    else:
        raw[:, :2] = halves()
        if kind in ("Q4_1", "Q5_1", "Q4_K", "Q5_K"):
            raw[:, 2:4] = halves()
    return raw.reshape(rows, -1)


@pytest.mark.parametrize("kind", B.KINDS)
def test_blocks_decode_as_gguf_does_and_fit_8_bits(kind):
    rng = np.random.default_rng(1)
    data = random_blocks(kind, 6, 512, rng)
    reference = gguf.quants.dequantize(data, getattr(gguf.GGMLQuantizationType, kind)).reshape(6, 512)
    blocks = B.decode(kind, data, 6, 512)
    assert np.array_equal(blocks.weights(), reference)  # bit for bit
    codes, scale, zero = B.to_uint8(blocks)
    assert codes.shape == (6, 512 // blocks.sub, blocks.sub) and zero.dtype == np.uint8
    rebuilt = (scale[..., None] * (codes.astype(np.float32) - zero[..., None])).reshape(6, 512)
    step = np.repeat(np.abs(scale), blocks.sub, axis=1)
    if kind in INTEGRAL:
        assert np.array_equal(rebuilt, reference)
    else:  # within half an 8-bit step, and far closer than the file's own step for 4-bit blocks
        assert (np.abs(rebuilt - reference) <= 0.5 * step + 1e-7).all()
        assert np.abs(rebuilt - reference).max() > 0  # random minima are not integral: not vacuous
    if kind == "Q4_K":
        # a minimum within the block's own span (zero point 0..15, as real files have): 17 x the resolution
        with np.errstate(divide="ignore", invalid="ignore"):
            z = -blocks.offset / blocks.scale
        inside = np.repeat((z >= 0) & (z <= 15), blocks.sub, axis=1)
        own = np.repeat(np.abs(blocks.scale), blocks.sub, axis=1)
        assert inside.sum() > 100
        assert (np.abs(rebuilt - reference)[inside] <= own[inside] / 34 + 1e-6).all()


def write_gguf(path, tensors):
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, (kind, data, rows, cols) in tensors.items():
        qtype = getattr(gguf.GGMLQuantizationType, kind)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_graph_gets_the_files_blocks_and_computes_the_same(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    from edge.device.runtime import backend

    rng = np.random.default_rng(2)
    vocab, hidden, inner = 64, 256, 512
    specs = {"token_embd.weight": ("Q8_0", vocab, hidden), "blk.0.ffn_up.weight": ("Q5_0", inner, hidden),
             "blk.0.ffn_down.weight": ("Q4_K", hidden, inner), "blk.0.attn_q.weight": ("Q6_K", hidden, hidden)}
    tensors = {name: (kind, random_blocks(kind, rows, cols, rng), rows, cols) for name, (kind, rows, cols) in specs.items()}
    path = tmp_path / "tiny.gguf"
    write_gguf(path, tensors)
    floats = {name: gguf.quants.dequantize(data, getattr(gguf.GGMLQuantizationType, kind)).reshape(rows, cols)
              for name, (kind, data, rows, cols) in tensors.items()}
    order = rng.permutation(hidden)  # as llama's converter permutes q and k rows
    inits = [numpy_helper.from_array(floats["token_embd.weight"], "embed"),
             numpy_helper.from_array(floats["blk.0.attn_q.weight"][order].T.copy(), "wq"),
             numpy_helper.from_array(floats["blk.0.ffn_up.weight"].T.copy(), "wup"),
             numpy_helper.from_array(floats["blk.0.ffn_down.weight"].T.copy(), "wdown"),
             numpy_helper.from_array(rng.standard_normal((hidden, 8)).astype(np.float32), "unknown")]
    nodes = [helper.make_node("Gather", ["embed", "ids"], ["x"], name="embed_tokens", axis=0),
             helper.make_node("MatMul", ["x", "wq"], ["q"], name="q_proj"),
             helper.make_node("MatMul", ["q", "wup"], ["up"], name="up_proj"),
             helper.make_node("MatMul", ["up", "wdown"], ["down"], name="down_proj"),
             helper.make_node("MatMul", ["down", "unknown"], ["y"], name="not_in_file")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "s"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "s", 8]),
                               helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, "s", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(model, str(fp32))

    info = B.carry(model, path, keep_float=["up_proj"])
    assert info["carried"] == {"Q8_0": 1, "Q4_K": 1, "Q6_K": 1} and info["permuted_rows"] == 1
    assert 0 < info["max_error_in_8bit_steps"] <= 0.51  # the Q4_K blocks are not integral
    kinds = {n.name: n.op_type for n in model.graph.node}
    assert kinds["up_proj"] == "MatMul" and kinds["not_in_file"] == "MatMul"  # kept float / not in the file
    assert sorted(kinds.values()).count("MatMulNBits") == 2 and "GatherBlockQuantized" in kinds.values()
    assert not {"embed", "wq", "wdown"} & {t.name for t in model.graph.initializer}
    carried = tmp_path / "carried.onnx"
    onnx.save(model, str(carried))

    ids = {"ids": np.array([[3, 17, 63, 0]], dtype=np.int64)}
    ref = backend("onnxruntime").open(fp32).run(ids)
    got = backend("onnxruntime").open(carried).run(ids)
    # exact weights (the permuted Q6_K rows in the graph's order), int8 activations: a few per mille
    rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())  # noqa: E731
    assert rel(got["q"], ref["q"]) < 0.02 and rel(got["y"], ref["y"]) < 0.05
