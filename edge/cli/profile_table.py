"""The profile result as rich renderables for the terminal. Nothing here computes a figure."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from edge.device.profiler.result import ConfigResult, ProfileResult

WIDE = 120  # below this many columns, one table per artifact with fewer columns
COLUMNS = ("artifact", "runtime", "thr", "init", "first", "p50", "p90", "p99", "per s", "peak MB", "model MB", "mJ/inf")
NARROW = ("runtime", "thr", "init", "first", "p50", "p99", "per s", "model MB", "mJ/inf")


def render(result: ProfileResult, width: int = WIDE) -> Group:
    m, s = result.machine, result.settings
    runs = f"{s.runs} runs" if s.runs else f"{s.duration_s:g} s"
    title = f"{m.target} ({m.target_source}) · {m.cpu or m.arch} · {m.cores} CPUs · {runs} after {s.warmup} warm-up"
    if width >= WIDE:
        parts = [_table(f"{title} · times in ms", result.results, result, COLUMNS)]
    else:
        names = list(dict.fromkeys(r.artifact.name for r in result.results))
        parts = [Text(title)] + [_table(f"{name} · times in ms", [r for r in result.results if r.artifact.name == name],
                                        result, NARROW) for name in names]
    return Group(*parts, *(Text(line) for line in notes(result)))


def _table(title: str, results: list[ConfigResult], result: ProfileResult, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in columns:
        table.add_column(name, justify="left" if name in ("artifact", "runtime") else "right", no_wrap=True)
    best = result.best
    for r in results:
        is_best = best is not None and (r.artifact.name, r.runtime.name, r.runtime.threads, r.runtime.affinity_label) == (
            best.artifact, best.runtime, best.threads, best.affinity_label)
        cells = _cells(r)
        table.add_row(*(cells.get(name, "") for name in columns), style="bold green" if is_best else None)
    return table


def _cells(r: ConfigResult) -> dict[str, str]:
    cores = "" if r.runtime.affinity_label == "all" else f" {r.runtime.affinity_label}"
    cells = {"artifact": r.artifact.name, "runtime": r.runtime.name, "thr": f"{r.runtime.threads}{cores}"}
    if r.error or r.latency_ms is None or r.memory_mb is None:
        return {**cells, "init": "error"}
    lat, mem, energy = r.latency_ms, r.memory_mb, r.energy or {}
    return {**cells, "init": _ms(lat.init), "first": _ms(lat.first), "p50": _ms(lat.p50), "p90": _ms(lat.p90),
            "p99": _ms(lat.p99), "per s": f"{r.throughput_per_s:,.0f}" if r.throughput_per_s else "-",
            "peak MB": _mb(mem.peak), "model MB": _mb(mem.model),
            "mJ/inf": f"{energy['per_inference_j'] * 1e3:.4g}" if energy.get("available") else "n/a"}


def notes(result: ProfileResult) -> list[str]:
    """The lines under the table: best, loop overhead, energy and thermal state, errors."""
    lines = [f"warning: {w}" for w in result.warnings]
    shapes = sorted({", ".join(f"{k} {v}" for k, v in r.input_shapes.items()) for r in result.results if r.input_shapes})
    lines += [f"inputs: {s}" for s in shapes]
    for r in result.results:
        g = r.generation
        if g:
            first = (f"{_ms(g['ttft_ms']['p50'])} ms ({g['prompt_tokens']}-token prompt, p50 of {g['generations']})"
                     if g["ttft_ms"] else "not measured (the runs ended inside the warm-up's generation: raise --runs)")
            lines.append(f"{r.artifact.name}/{r.runtime.threads}t: time to first token {first}, decode "
                         f"{g['decode_tokens_per_s'] or 0:.1f} tokens/s ({g['new_tokens']} per generation), "
                         f"peak memory {_mb(r.memory_mb.peak if r.memory_mb else None)} MB")
    if result.best:
        b = result.best
        lines.append(f"best: {b.artifact} on {b.runtime}, {b.threads} thread(s), {b.affinity_label} cores "
                     f"(p50 {_ms(b.p50_ms)} ms)")
    measured = [r for r in result.results if r.loop_overhead_ms]
    if measured:
        worst = max(r.loop_overhead_ms.per_iteration for r in measured)
        lines.append(f"timing loop overhead: up to {worst * 1e6:.0f} ns per iteration (included in every sample)")
    reasons = sorted({r.energy["reason"] for r in measured if r.energy and not r.energy.get("available")})
    lines += [f"energy unavailable: {why}" for why in reasons]
    for r in measured:
        if r.energy and r.energy.get("available"):
            e = r.energy
            lines.append(f"energy {r.artifact.name}/{r.runtime.threads}t: {e['average_w']:.3g} W average, "
                         f"{e['idle_w']:.3g} W idle, {e['above_idle_per_inference_j'] * 1e3:.4g} mJ above idle per "
                         f"inference ({e['meter']}, {e['confidence']})")
    lines += sorted({f"thermal: {flag}" for r in measured for flag in (r.thermal or {}).get("flags", [])})
    lines += [f"error {r.artifact.name} on {r.runtime.name}, {r.runtime.threads} thread(s): {r.error}"
              for r in result.results if r.error]
    return lines


def _ms(value: float) -> str:
    return f"{value:.3f}" if value >= 0.1 else f"{value:.4f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
