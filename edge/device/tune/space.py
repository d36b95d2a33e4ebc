"""What ``edge tune`` may choose among: trials (artifact, runtime, threads, core set, settings).

Only artifacts that passed their gate (or, for fp32, their validation) are candidates; the
others are listed with the reason and never measured. Each artifact is tried in every installed
runtime that can run it (a TFLite file in LiteRT and in tflite-runtime), on every core set a
big.LITTLE machine offers, at 1..N threads, then with the settings of its runtime that matter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge.core.catalog import Knobs, OPTIMIZATION_LEVELS
from edge.device.profiler.plan import Candidate, Config, Source, affinity_sets
from edge.device.runtime import BACKENDS, for_format
from edge.device.runtime.tflite_ops import unsupported

# onnxruntime's fused ops that only its optimizers write, with the optimizer that writes each
# (a fusion can be slower than the ops it replaces on a given CPU: docs/decisions.md).
FUSIONS = {
    "SkipLayerNormalization": "SkipLayerNormFusion",
    "SkipSimplifiedLayerNormalization": "SkipLayerNormFusion",
    "SimplifiedLayerNormalization": "SimplifiedLayerNormFusion",
    "BiasGelu": "BiasGeluFusion",
    "FastGelu": "FastGeluFusion",
    "QuickGelu": "QuickGeluFusion",
    "Attention": "AttentionFusion",
    "EmbedLayerNormalization": "EmbedLayerNormFusion",
    "MatMulIntegerToFloat": "MatMulIntegerToFloatFusion",
    "DynamicQuantizeMatMul": "DynamicQuantizeMatMulFusion",
    "FusedConv": "ConvActivationFusion",
}


@dataclass(frozen=True)
class Trial:
    """One configuration to measure; ``key`` names it in the table and in the resume state."""

    artifact: str  # the artifact's name (its variant)
    runtime: str
    threads: int
    cores: str  # "all", "big" or "little"
    optimization: str = "all"  # onnxruntime's graph optimisation level
    knobs: Knobs = field(default_factory=Knobs)

    @property
    def key(self) -> str:
        changed = json.dumps(self.knobs.changed(), sort_keys=True, separators=(",", ":"))
        return f"{self.artifact}|{self.runtime}|{self.threads}|{self.cores}|{self.optimization}|{changed}"

    @property
    def label(self) -> str:
        settings = self.settings_text()
        return (f"{self.artifact} · {self.runtime} · {self.threads} thread(s) · {self.cores} cores"
                + (f" · {settings}" if settings else ""))

    def settings_text(self) -> str:
        """The settings that differ from the runtime's defaults, in words ("" when none do)."""
        words = [f"graph optimisation {self.optimization}"] if self.optimization != "all" and self.runtime == "onnxruntime" else []
        changed = self.knobs.changed()
        words += ["no spinning"] if changed.get("spinning") is False else []
        words += ["no arena"] if changed.get("arena") is False else []
        words += [f"without {', '.join(changed['disabled_optimizers'])}"] if changed.get("disabled_optimizers") else []
        words += ["no XNNPACK"] if changed.get("xnnpack") is False else []
        words += ["XNNPACK latest features"] if changed.get("xnnpack_latest") else []
        return ", ".join(words)


@dataclass(frozen=True)
class Space:
    """The candidates of one bundle on one machine, and what was left out and why."""

    source: Source
    candidates: dict[str, Candidate]  # artifact name -> candidate
    runtimes: dict[str, list[str]]  # artifact name -> runtimes that can run it here
    core_sets: dict[str, list[int]]  # "all" / "big" -> CPUs
    default: Trial  # what edge.load picks without a tuned choice
    skipped: list[dict[str, str]]  # {"artifact", "reason"}

    def config(self, trial: Trial) -> Config:
        return Config(self.candidates[trial.artifact], trial.runtime, trial.threads, self.core_sets[trial.cores],
                      trial.cores, trial.optimization, trial.knobs)

    def first_trials(self) -> list[Trial]:
        """Every artifact in every runtime, at the default's threads and core set and default settings."""
        base = self.default
        trials = [Trial(name, runtime, base.threads, base.cores, base.optimization)
                  for name in self.candidates for runtime in self.runtimes[name]]
        return [base] + [t for t in trials if t.key != base.key]

    def thread_trials(self, trial: Trial) -> list[Trial]:
        """``trial`` at every thread count of every core set."""
        return [replace(trial, threads=n, cores=label)
                for label, cpus in self.core_sets.items() for n in range(1, len(cpus) + 1)]

    def setting_axes(self, trial: Trial, fusions: list[str]) -> list[list[Trial]]:
        """Groups of alternatives to ``trial``, one group per setting of its runtime (each group
        is raced against ``trial``); ``fusions`` are the optimizers that fired in its graph."""
        if trial.runtime == "onnxruntime":
            knobs = trial.knobs
            axes = [[replace(trial, optimization=level) for level in OPTIMIZATION_LEVELS[1:] if level != trial.optimization],
                    [replace(trial, knobs=replace(knobs, spinning=not knobs.spinning))],
                    [replace(trial, knobs=replace(knobs, arena=not knobs.arena))]]
            if fusions and trial.optimization in ("extended", "all"):
                axes.append([replace(trial, knobs=replace(knobs, disabled_optimizers=[name])) for name in fusions])
            return axes
        if trial.runtime == "litert":
            return [[replace(trial, knobs=replace(trial.knobs, xnnpack=False))],
                    [replace(trial, knobs=replace(trial.knobs, xnnpack_latest=True))]]
        return [[replace(trial, knobs=replace(trial.knobs, xnnpack=False))]]


def space(source: Source, manifest, facts, usable: list[int]) -> Space:
    """The candidates of ``source`` (read from ``manifest``) on a machine with ``facts``."""
    from edge.device.model import _choose

    settings = source.runtime_settings
    by_file = {c.info.name: c for c in source.candidates}
    candidates: dict[str, Candidate] = {}
    runtimes: dict[str, list[str]] = {}
    skipped = []
    for artifact in manifest.artifacts:
        if not artifact.passed:
            skipped.append({"artifact": artifact.name, "reason": "failed its accuracy gate" if artifact.gate is not None
                            else "failed its validation against the source model"})
            continue
        candidate = by_file[artifact.path]
        usable_runtimes = [name for name in for_format(artifact.format)
                           if BACKENDS[name].installed() and not unsupported(candidate.ops, name)]
        if not usable_runtimes:
            skipped.append({"artifact": artifact.name, "reason": f"no installed runtime runs {artifact.format} here"})
            continue
        candidates[artifact.name] = candidate
        runtimes[artifact.name] = usable_runtimes
    sets = dict(affinity_sets(facts, usable, settings.affinity, sweep=True))
    chosen, runtime, _ = _choose(manifest, None)
    cores = settings.affinity if settings.affinity in sets else "all"
    threads = settings.threads or len(sets[cores])
    default = Trial(chosen.name, runtime, min(threads, len(sets[cores])), cores, settings.graph_optimization, settings.knobs)
    return Space(source, candidates, runtimes, sets, default, skipped)


def fused(artifact: Path, optimization: str) -> list[str]:
    """The optimizers whose fused ops onnxruntime writes into this graph at this level (found by
    op type in the optimized graph it saves, and absent from the artifact itself)."""
    import mmap
    import tempfile

    import onnxruntime as ort

    if optimization not in ("extended", "all"):
        return []
    with tempfile.TemporaryDirectory(prefix="edge-tune-") as scratch:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # "all" adds layout only
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        # the weights go to a file of their own: the graph left to search is kilobytes, not the model's size
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "64")
        options.log_severity_level = 3
        ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        optimized = Path(options.optimized_model_filepath).read_bytes()
    tags = {op: b"\x22" + bytes([len(op)]) + op.encode() for op in FUSIONS}  # NodeProto.op_type (field 4, a string)
    written = [op for op, tag in tags.items() if tag in optimized]
    if not written:
        return []
    with open(artifact, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as original:
        found = [FUSIONS[op] for op in written if original.find(tags[op]) < 0]
    return list(dict.fromkeys(found))
