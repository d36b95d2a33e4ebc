"""The tune table and the tuned choices as rich renderables. Nothing here computes a figure."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

STYLES = {"chosen": "bold green", "failed": "red", "slower": "dim", "worse": "dim", "dropped": "dim"}


def render(doc: dict[str, Any], limit: int = 20) -> Group:
    """The measured trials, best first (``limit`` rows, then a count of the rest)."""
    m = doc["machine"]
    unit = next((t["objective"]["unit"] for t in doc["trials"] if t["objective"]), "")
    title = (f"edge tune · {doc['target']} · {m.get('cpu') or m.get('arch')} · {m.get('cores')} CPUs · "
             f"objective {doc['objective']} ({unit}, median with its noise bound)")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("artifact", "runtime", "thr", "cores", "settings", "stage", "rounds", doc["objective"], "bound",
                 "peak MB", "status"):
        table.add_column(name, justify="right" if name in ("thr", "rounds", doc["objective"], "bound", "peak MB") else "left")
    rows = sorted(doc["trials"], key=lambda t: (t["objective"] is None, (t["objective"] or {}).get("value", 0)))
    for t in rows[:limit]:
        o = t["objective"]
        status = t["error"] or t["status"]
        status += ", profile default" if t["key"] == doc.get("default") else ""
        table.add_row(t["artifact"], t["runtime"], str(t["threads"]), t["cores"], t["settings"] or "-", t["stage"],
                      str(t["rounds"]), _num(o and o["value"]), f"{_num(o['low'])}..{_num(o['high'])}" if o else "-",
                      _num(t["peak_mb"]), status, style=STYLES.get(t["status"]))
    parts: list[Any] = [table]
    if len(rows) > limit:
        parts.append(Text(f"... and {len(rows) - limit} more in the table file", style="dim"))
    for s in doc["skipped"]:
        parts.append(Text(f"not tried: {s['artifact']}: {s['reason']}", style="dim"))
    for note in doc["notes"]:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def summary(doc: dict[str, Any]) -> list[str]:
    """One line for the choice against the profile's default, and how the search went."""
    by_key = {t["key"]: t for t in doc["trials"]}
    choice, default = by_key.get(doc["choice"]), by_key.get(doc["default"])
    lines = [f"{doc['measurements']} measurements ({doc.get('replayed', 0)} replayed from an earlier run) "
             f"in {doc['seconds']:.0f} s of measuring processes; process noise here: +-{doc['process_noise'] * 100:.1f} % "
             "(the widest spread between fresh processes of one configuration; every bound is at least that wide)"]
    if choice and choice["objective"]:
        o = choice["objective"]
        line = f"chosen: {choice['label']}: {_num(o['value'])} {o['unit']}"
        if default and default["objective"] and default["key"] != choice["key"]:
            d = default["objective"]
            line += f" (the profile's default, {default['label']}: {_num(d['value'])} {d['unit']}, x{d['value'] / o['value']:.2f})"
        elif default and default["key"] == choice["key"]:
            line += " (the profile's default already was the best)"
        lines.append(line)
    return lines


def tuned_lines(tuned: list) -> list[str]:
    """``edge inspect``: one line per tuned choice in a manifest."""
    from edge.device.tune.space import Trial

    lines = []
    for t in tuned:
        c = t.measured.get("choice", {})
        d = t.measured.get("default", {})
        figure = f"{_num(c.get('value'))} {c.get('unit', '')}" if c.get("value") is not None else "not measured"
        versus = (f", profile default {_num(d['value'])} {d.get('unit', '')}"
                  if d.get("value") is not None and d.get("label") != c.get("label") else "")
        settings = Trial(t.artifact, t.runtime, t.threads, t.cores, t.graph_optimization, t.knobs).settings_text()
        lines.append(f"tuned for {t.target} ({t.machine.get('cpu')}, {t.machine.get('cpus')} CPUs) on {t.created[:10]}: "
                     f"{t.artifact} on {t.runtime}, {t.threads} thread(s), {t.cores} cores"
                     + (f", {settings}" if settings else "")
                     + f"; {t.objective} {figure}{versus}" + ("" if t.complete else " (search stopped at its time limit)")
                     + f"; table {t.table}")
    return lines


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
