"""An existing ``.onnx`` file: checked, made self-contained, and re-validated.

The reference is the original file run by onnxruntime with every graph optimisation off,
so the comparison shows what cleaning and simplifying changed, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from edge.build import onnxfile
from edge.core.bundle import sha256_file
from edge.exporters.base import Exported, ExportRequest
from edge.device.runtime import backend


class OnnxFileExporter:
    name = "onnx_file"

    def accepts(self, source: str) -> bool:
        return source.lower().endswith(".onnx")

    def export(self, source: str, request: ExportRequest) -> Exported:
        import onnx

        path = Path(source)
        model = onnxfile.load_checked(path)
        inputs, outputs = onnxfile.io_specs(model)
        if request.inputs:
            inputs = _merge_specs(inputs, request.inputs)
        out = request.workdir / "model.onnx"
        onnxfile.save(model, out)
        ort = backend("onnxruntime")
        return Exported(
            onnx_path=out,
            inputs=inputs,
            outputs=outputs,
            reference=ort.open(out, optimization="disable").run,  # self-contained copy of the original
            reference_name=f"onnxruntime {ort.version()} (original graph, optimisations off)",
            source={
                "kind": "onnx", "ref": str(path), "sha256": sha256_file(path),
                "producer": f"{model.producer_name} {model.producer_version}".strip(),
                "opset": onnxfile.opset(model),
            },
            tools={"onnx": onnx.__version__},
            build={"exporter": "copy (external data folded in)"},
        )


def _merge_specs(found, given):
    """The user's specs (ranges, fixed sizes) override what the graph says, by name."""
    by_name = {s.name: s for s in given}
    return [by_name.get(s.name, s) for s in found]


