"""The report's section for an ``edge tune`` table: its configurations against latency, peak memory
and energy, with the Pareto front (marked in the table file) joined and the choice ringed."""

from __future__ import annotations

from edge.cli.report import svg
from edge.cli.report.page import DASH, e, num


def section(doc: dict, name: str) -> str:
    trials = [t for t in doc["trials"] if not t.get("error") and t.get("p50_ms") is not None]
    m = doc.get("machine") or {}
    unit = "ms per token" if any(t.get("ttft_ms") for t in trials) else "ms"
    head = (f"<h3>{e(name)}: {e(doc.get('bundle'))} on {e(doc.get('target'))} ({e(m.get('cpu') or m.get('arch'))}, "
            f"{e(m.get('cores'))} CPUs), objective {e(doc.get('objective'))}"
            + ("" if doc.get("complete") else " · <span class=\"warn\">search stopped before its end</span>") + "</h3>")

    def kind(t: dict) -> str:
        return "chosen" if t["key"] == doc.get("choice") else "front" if t.get("pareto") else "other"

    charts = [_figure(svg.scatter([(t["p50_ms"], t["peak_mb"], t["label"], kind(t)) for t in trials if t.get("peak_mb")],
                                  x_label=f"p50 latency ({unit})", y_label="peak memory (MB)",
                                  label=f"latency against peak memory, {name}"),
                      "Latency against peak memory: filled dots are the Pareto front (nothing is better on both), "
                      "the ring is the choice")]
    if all(t.get("energy_j") is not None for t in trials) and trials:
        charts.append(_figure(svg.scatter([(t["p50_ms"], t["energy_j"], t["label"], kind(t)) for t in trials],
                                          x_label=f"p50 latency ({unit})", y_label="energy per inference (J)",
                                          label=f"latency against energy, {name}"), "Latency against energy per inference"))
    else:
        charts.append(f'<p class="note">energy: {DASH} not measured in this search (it is measured only with '
                      "<code>--objective energy</code>, on a device with a meter)</p>")
    rows = "".join(
        f"<tr><td>{e(t['label'])}</td><td class=\"n\">{num(t['p50_ms'])}</td><td class=\"n\">{num(t.get('peak_mb'))}</td>"
        f"<td class=\"n\">{num(t.get('energy_j'))}</td><td>{e(t['status'])}</td></tr>"
        for t in sorted(trials, key=lambda t: t["p50_ms"]) if t.get("pareto") or t["key"] == doc.get("choice"))
    table = ("<table><thead><tr><th>on the front</th><th>p50</th><th>peak MB</th><th>J / inference</th><th>status</th>"
             f"</tr></thead><tbody>{rows}</tbody></table>")
    return head + '<div class="grid">' + "".join(charts) + "</div>" + table


def _figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{e(caption)}</figcaption></figure>"
