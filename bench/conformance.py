"""Conformance: the onnx package's backend node tests through edge.load (onnxruntime backend).

The onnx wheel ships the node test cases as code (``onnx.backend.test.case.node``: a model and
input/expected-output arrays each) rather than as the ``data/node/*`` protobuf folders of its
source tree; ``collect_testcases`` builds the same cases. A case counts for edge where plain
onnxruntime reproduces the expected outputs; the question is whether edge's wrapper (input
checks, specs, output naming) does too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _plain(values) -> bool:
    return all(isinstance(v, np.ndarray) and v.dtype.kind in "biufcU?" for v in values)


def _close(got: list, want: list[np.ndarray]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        g = np.asarray(g)
        if g.shape != w.shape:
            return False
        if w.dtype.kind in "fc":
            if not np.allclose(g, w, rtol=1e-3, atol=1e-7, equal_nan=True):
                return False
        elif not np.array_equal(g, w):
            return False
    return True


def run() -> dict:
    import tempfile
    import warnings

    import onnx
    import onnxruntime as ort
    from onnx.backend.test.case.node import collect_testcases

    import edge

    ort.set_default_logger_severity(3)  # the failing cases would fill the terminal with load errors
    counts = {"cases": 0, "not_plain_tensors": 0, "ort_cannot_load": 0, "ort_wrong": 0, "ort_right": 0,
              "edge_right": 0, "edge_differs": 0}
    differs = []
    with tempfile.TemporaryDirectory(prefix="edge-conformance-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow and divide by zero on purpose
        for case in collect_testcases():
            counts["cases"] += 1
            inputs, expected = case.data_sets[0]
            if not (_plain(inputs) and _plain(expected)):
                counts["not_plain_tensors"] += 1
                continue
            try:
                session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
                names = [i.name for i in session.get_inputs()]
                got = session.run(None, dict(zip(names, inputs)))
            except Exception:  # onnxruntime lacks the op or the opset: not edge's to count
                counts["ort_cannot_load"] += 1
                continue
            if not _close(got, expected):
                counts["ort_wrong"] += 1
                continue
            counts["ort_right"] += 1
            path = Path(tmp) / f"{case.name}.onnx"
            onnx.save(case.model, str(path))
            try:
                result = edge.load(path).run(*inputs) if inputs else edge.load(path).run({})
                ok, reason = _close(list(result.values()), expected), "different outputs"
            except Exception as exc:
                ok, reason = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            counts["edge_right" if ok else "edge_differs"] += 1
            if not ok:
                differs.append({"case": case.name, "why": reason})
            path.unlink()
    return {"section": "conformance", "onnx": onnx.__version__, "onnxruntime": ort.__version__,
            "counts": counts, "edge_differs": differs}


def table(result: dict):
    from rich.table import Table

    c = result["counts"]
    t = Table(title=f"onnx {result['onnx']} backend node tests through edge.load (onnxruntime {result['onnxruntime']})",
              title_justify="left")
    t.add_column("what")
    t.add_column("cases", justify="right")
    for label, key in (("cases", "cases"), ("not plain tensors (sequences, optionals, float8...)", "not_plain_tensors"),
                       ("onnxruntime cannot load or run", "ort_cannot_load"), ("onnxruntime gives other outputs", "ort_wrong"),
                       ("onnxruntime right", "ort_right"), ("edge.load right, of those", "edge_right"),
                       ("edge.load differs, of those", "edge_differs")):
        t.add_row(label, str(c[key]))
    lines: list = [t]
    lines += [f"  differs: {d['case']}: {d['why']}" for d in result["edge_differs"][:20]]
    return lines


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
