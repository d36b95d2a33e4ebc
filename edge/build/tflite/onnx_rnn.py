"""ONNX ``LSTM`` -> torch, for onnx2torch (1.5.15 has no converter for it), so a stateful RNN such
as the Silero voice-activity detector becomes TFLite like any other ONNX file.

The cell is written out step by step (MatMul, Sigmoid, Tanh): the TFLite file has one fixed
shape, so the sequence length is known, and plain ops convert and quantize everywhere, where a
fused LSTM kernel would not. ONNX packs gates as input, output, forget, cell (torch: i, f, g, o).
Covered: forward or reverse direction, sequence-first layout, default activations, optional
initial state and biases. Anything else stays unconverted, and the export names the op.
"""

from __future__ import annotations

from typing import Any

from edge.core.errors import require


def register() -> None:
    """Add the LSTM converter to onnx2torch's registry (once)."""
    from onnx2torch.node_converters.registry import OperationDescription, _CONVERTER_REGISTRY, add_converter

    for version in (7, 14):
        if OperationDescription(domain="", operation_type="LSTM", version=version) not in _CONVERTER_REGISTRY:
            add_converter(operation_type="LSTM", version=version)(_convert)


def _convert(node: Any, graph: Any) -> Any:
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    a = node.attributes
    unsupported = {k: a[k] for k in ("clip", "input_forget", "activations") if a.get(k)}
    if a.get("direction", "forward") not in ("forward", "reverse") or a.get("layout", 0) != 0 or unsupported:
        raise NotImplementedError(f"Converter is not implemented (operation_type='LSTM', version=14 with "
                                  f"direction={a.get('direction', 'forward')}, layout={a.get('layout', 0)}, {unsupported})")
    inputs = list(node.input_values) + [""] * (8 - len(node.input_values))
    if inputs[4] or inputs[7]:
        raise NotImplementedError("Converter is not implemented (operation_type='LSTM' with sequence_lens or peepholes)")
    weight = lambda name: graph.initializers[name].to_torch() if name else None  # noqa: E731
    module = Lstm(weight(inputs[1]), weight(inputs[2]), weight(inputs[3]), a.get("direction") == "reverse")
    return OperationConverterResult(
        torch_module=module,
        onnx_mapping=OnnxMapping(inputs=(inputs[0], inputs[5], inputs[6]), outputs=node.output_values),
    )


def Lstm(w: Any, r: Any, b: Any, reverse: bool) -> Any:
    """One ONNX LSTM direction: ``w`` [1, 4H, I], ``r`` [1, 4H, H], ``b`` [1, 8H] or None."""
    torch = require("torch")
    hidden = r.shape[-1]
    bias = (b[0, :4 * hidden] + b[0, 4 * hidden:]) if b is not None else torch.zeros(4 * hidden)

    class OnnxLstm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", w[0].T.contiguous())
            self.register_buffer("r", r[0].T.contiguous())
            self.register_buffer("bias", bias)

        def forward(self, x, initial_h=None, initial_c=None):
            steps, batch = x.shape[0], x.shape[1]
            h = initial_h[0] if initial_h is not None else x.new_zeros(batch, hidden)
            c = initial_c[0] if initial_c is not None else x.new_zeros(batch, hidden)
            projected = torch.matmul(x, self.w) + self.bias  # every step's input part at once
            outputs = []
            for t in (reversed(range(steps)) if reverse else range(steps)):
                i, o, f, g = (projected[t] + torch.matmul(h, self.r)).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            if reverse:
                outputs.reverse()
            return torch.stack(outputs).unsqueeze(1), h.unsqueeze(0), c.unsqueeze(0)

    return OnnxLstm()
