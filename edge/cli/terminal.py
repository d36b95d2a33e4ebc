"""Turning records into rich renderables for the terminal. Nothing here computes a figure."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from edge.core import catalog
from edge.core.bundle import Manifest
from edge.device.detect import Detection


def targets_table(targets: list[catalog.Target]) -> Table:
    table = Table(title="Targets", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("arch", no_wrap=True)
    table.add_column("cores")
    table.add_column("memory", justify="right", no_wrap=True)
    table.add_column("description")
    for t in targets:
        cores = " + ".join(f"{c.count}x {c.core}" for c in t.clusters)
        table.add_row(*map(Text, (t.name, t.arch, cores, f"{t.memory_mb} MB", t.description)))
    return table


def target_detail(target: catalog.Target, profile: catalog.Profile) -> Group:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    rows = [
        ("target", f"{target.name}: {target.description}"),
        ("architecture", target.arch),
        ("ISA features", ", ".join(target.isa)),
        ("cores", "; ".join(_cluster(c) for c in target.clusters)),
        ("memory", f"{target.memory_mb} MB"),
        ("runtimes", ", ".join(target.runtimes)),
        ("execution providers", ", ".join(target.execution_providers)),
        ("energy meters", ", ".join(target.meters) or "none known"),
        ("notes", target.notes or "-"),
        ("profile", f"{profile.name}: {profile.description}"),
        ("runtime", f"prefer {', '.join(profile.runtime.preference)}; threads "
                    f"{profile.runtime.threads or 'one per core'}; affinity {profile.runtime.affinity}; "
                    f"graph optimisation {profile.runtime.graph_optimization}"),
        ("validation", f"atol {profile.validation.atol:g}, rtol {profile.validation.rtol:g}, "
                       f"min cosine {profile.validation.min_cosine:g}, {profile.validation.samples} samples"),
        ("opset", str(profile.opset)),
    ]
    for k, v in rows:
        facts.add_row(k, Text(v))
    variants = Table(title="variants (artifacts to build)", title_justify="left")
    for col in ("name", "format", "precision", "recipe"):
        variants.add_column(col)
    for v in profile.variants:
        recipe = "-" if v.precision in ("fp32", "fp16") else (
            f"block {v.block_size}, {'symmetric' if v.symmetric else 'asymmetric'}, float activations (language models)"
        ) if v.precision in catalog.WEIGHT_ONLY else (
            f"{v.weights} weights, activations {v.activation_type}, weights {v.weight_type}"
            + (", reduce-range" if v.reduce_range else "")
            + (f", calibration {v.calibration}" if v.precision == "int8-static" else "")
        )
        variants.add_row(*map(Text, (v.name, v.format, v.precision, recipe)))
    return Group(facts, Text(), variants)


def _cluster(c: catalog.Cluster) -> str:
    freq = f" @ {c.max_freq_mhz} MHz" if c.max_freq_mhz else ""
    return f"{c.count}x {c.core}{freq} ({c.name}, capacity {c.capacity})"


def detection(d: Detection) -> Group:
    head = Text.assemble(("target: ", "bold"), (d.target, "bold green" if d.exact else "bold yellow"))
    lines: list[Any] = [head]
    lines += [Text(f"  because: {r}") for r in d.reasons]
    if d.note:
        lines.append(Text(f"  note: {d.note}", style="yellow"))
    f = d.facts
    lines.append(Text(
        f"  machine: {f.board or f.cpu_model or 'unknown'}; {len(f.cores)} cores"
        + (f"; {f.memory_mb} MB" if f.memory_mb else "")
        + ("; big.LITTLE" if f.heterogeneous else ""), style="dim"))
    return Group(*lines)


def manifest(m: Manifest, where: str) -> Group:
    src = m.source
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("bundle", where),
        ("source", f"{src.get('kind')}: {src.get('ref')}" + (f" (task {src['task']})" if src.get("task") else "")),
        ("source sha256", str(src.get("sha256"))),
        ("target", f"{m.target.name} (profile {m.profile.name})"),
        ("created", m.created),
        ("tools", ", ".join(f"{k} {v}" for k, v in m.tools.items())),
    ]
    for k, v in rows:
        head.add_row(k, Text(v))
    io = Table(title="signature", title_justify="left")
    for col in ("", "name", "dtype", "shape", "range"):
        io.add_column(col)
    for kind, specs in (("in", m.inputs), ("out", m.outputs)):
        for s in specs:
            rng = "..".join(f"{x:g}" for x in s["range"]) if s.get("range") else ""
            shape = "[" + ", ".join(map(str, s["shape"])) + "]"
            io.add_row(*map(Text, (kind, s["name"], s["dtype"], shape, rng)))
    arts = Table(title="artifacts", title_justify="left")
    for col in ("variant", "file", "precision", "size", "check", "ms"):
        arts.add_column(col, no_wrap=True)
    for a in m.artifacts:
        verdict = Text("passed", style="green") if a.passed else Text("FAILED", style="bold red")
        latency = f"{a.latency['median_ms']:.2f}" if a.latency else "-"
        arts.add_row(*map(Text, (a.name, a.path, a.precision, _size(a.size))), verdict, Text(latency))
    parts: list[Any] = [head, Text(), io, Text(), arts]
    for a in m.artifacts:
        parts.append(Text(f"{a.name}: {_gate(a.gate) if a.gate is not None else _worst(a.validation)}"))
    for a in m.artifacts:
        if a.format == "tflite":
            parts.append(Text(f"{a.name}: {_interpreters(a)}", style="dim"))
    if m.evaluation:
        data = m.evaluation["data"]
        parts.append(Text(f"accuracy gate ({m.evaluation['kind']}) on {data['origin']}"
                          + (f"; {data['note']}" if data.get("note") else ""), style="dim"))
    timed = next((a.latency for a in m.artifacts if a.latency), None)
    if timed:
        runtimes = ", ".join(dict.fromkeys(a.latency["runtime"] for a in m.artifacts if a.latency))
        parts.append(Text(f"ms: median latency at export, {timed['threads']} threads, {runtimes}, "
                          f"inputs {timed['input_shapes']}", style="dim"))
    if m.dims:
        parts.append(Text(f"sizes of open axes (edge profile feeds these): "
                          f"{', '.join(f'{k}={v}' for k, v in m.dims.items())}", style="dim"))
    if m.preferred:
        parts.append(Text(f"preferred order: {', '.join(m.preferred)}", style="dim"))
    same: dict[str, list[str]] = {}  # variants skipped for one reason are named on one line
    for s in m.skipped:
        same.setdefault(s["reason"], []).append(f"{s['variant']} ({s['format']} {s['precision']})")
    for reason, names in same.items():
        parts.append(Text(f"not built: {', '.join(names)}: {reason}", style="dim"))
    for note in m.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    if m.tuned:
        from edge.cli.tune_table import tuned_lines

        parts += [Text(line, style="cyan") for line in tuned_lines(m.tuned)]
    return Group(*parts)


def _interpreters(a: Any) -> str:
    """Which TFLite interpreters can run the artifact, from its recorded ops, before loading it."""
    from edge.device.runtime import for_format
    from edge.device.runtime.tflite_ops import unsupported

    verdicts = []
    for runtime in for_format("tflite"):
        too_new = unsupported(a.ops, runtime)
        verdicts.append(f"{runtime} cannot run {', '.join(too_new)}" if too_new else f"{runtime} ok")
    shapes = ", ".join(f"{s['name']} {s['dtype']}[{', '.join(map(str, s['shape']))}]" for s in a.inputs)
    return f"{len(a.ops)} op kinds; {'; '.join(verdicts)}" + (f"; takes {shapes}" if shapes else "")


def _gate(gate: dict[str, Any]) -> str:
    text = f"gate vs fp32: {gate['summary']}"
    kept = gate.get("kept_in_float") or []
    if kept:
        text += f"; {len(kept)} layer(s) kept in float after {len(gate['steps']) - 1} repair step(s)"
    return text


def _worst(validation: dict[str, Any]) -> str:
    if "summary" in validation:  # a language model: greedy tokens against the source's
        return f"{validation['summary']} ({validation.get('runtime')} vs {validation.get('reference')})"
    outputs = validation.get("outputs") or {}
    if not outputs:
        return "-"
    name, o = max(outputs.items(), key=lambda kv: kv[1].get("max_abs_diff") or float("inf"))
    if o.get("max_abs_diff") is None:
        return f"{name}: {o.get('note')}"
    return (f"worst output {name}: max abs diff {o['max_abs_diff']:.2g}, cosine {o['cosine']:.6f} "
            f"vs {validation.get('reference')}, inputs {validation.get('inputs', '')}")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def outputs(values: dict[str, Any]) -> Group:
    """Each output's shape and dtype, with its values when small or top classes when 2-D."""
    import numpy as np

    parts: list[Any] = []
    for name, value in values.items():
        arr = np.asarray(value)
        parts.append(Text(f"{name}: {arr.dtype} {list(arr.shape)}", style="bold"))
        if arr.ndim == 2 and 3 <= arr.shape[1] <= 1000:  # scores over classes: show the best
            for i, row in enumerate(arr[:8]):
                top = np.argsort(row)[::-1][:3]
                parts.append(Text(f"  [{i}] top: " + ", ".join(f"{k} ({row[k]:.3f})" for k in top)))
        elif arr.size <= 16:
            parts.append(Text("  " + np.array2string(arr, precision=4, suppress_small=True).replace("\n", "\n  ")))
        else:
            flat = arr.astype(np.float64).ravel()
            parts.append(Text(f"  min {flat.min():.4g}, max {flat.max():.4g}, mean {flat.mean():.4g}; "
                              f"first: {np.array2string(flat[:6], precision=4)}"))
    return Group(*parts)
