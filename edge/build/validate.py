"""Comparing an artifact's outputs with a reference's, output by output, over several samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge.core.catalog import Tolerance

Outputs = dict[str, np.ndarray]
Runner = Callable[[dict[str, np.ndarray]], Outputs]


@dataclass
class OutputReport:
    max_abs_diff: float | None  # None: shapes differ, nothing to compare
    cosine: float | None  # the lowest over the samples
    within_tolerance: bool
    note: str = ""


@dataclass
class ValidationReport:
    reference: str  # what produced the expected outputs, e.g. "torch 2.13.0"
    runtime: str  # what ran the artifact, e.g. "onnxruntime 1.31.1"
    inputs: str  # where the inputs came from
    samples: int
    tolerance: dict[str, float]
    outputs: dict[str, OutputReport] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(o.within_tolerance for o in self.outputs.values())

    def worst(self) -> tuple[str, OutputReport]:
        return max(self.outputs.items(), key=lambda kv: (not kv[1].within_tolerance, kv[1].max_abs_diff is None, kv[1].max_abs_diff or 0.0))

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "reference": self.reference,
            "runtime": self.runtime,
            "inputs": self.inputs,
            "samples": self.samples,
            "tolerance": self.tolerance,
            "outputs": {k: vars(v) for k, v in self.outputs.items()},
        }


def describe(report: OutputReport) -> str:
    if report.max_abs_diff is None:
        return report.note
    return f"max abs diff {report.max_abs_diff:.3g}, cosine {report.cosine:.6f}"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def compare(
    expected: Runner,
    actual: Runner,
    samples: list[dict[str, np.ndarray]],
    tolerance: Tolerance,
    *,
    reference: str,
    runtime: str,
    inputs: str,
) -> ValidationReport:
    report = ValidationReport(
        reference, runtime, inputs, len(samples),
        {"atol": tolerance.atol, "rtol": tolerance.rtol, "min_cosine": tolerance.min_cosine},
    )
    for feeds in samples:
        want, got = expected(feeds), actual(feeds)
        for name, ref in want.items():
            out = got[name]
            if out.shape != ref.shape:
                note = f"shape {list(out.shape)} where the reference has {list(ref.shape)}"
                report.outputs[name] = OutputReport(None, None, False, note)
                continue
            diff = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
            cos = cosine(out, ref)
            # Cosine is noise when every element is already within atol (an output of ~zeros).
            cos_ok = cos >= tolerance.min_cosine or diff <= tolerance.atol
            ok = bool(np.allclose(out, ref, atol=tolerance.atol, rtol=tolerance.rtol)) and cos_ok
            prev = report.outputs.get(name)
            if prev is not None and prev.max_abs_diff is None:
                continue
            if prev is not None:
                diff, cos, ok = max(diff, prev.max_abs_diff), min(cos, prev.cosine), ok and prev.within_tolerance
            report.outputs[name] = OutputReport(diff, cos, ok)
    return report
