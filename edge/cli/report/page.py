"""The HTML of the report page, section by section. Nothing here computes a figure: values are
taken from the result files, formatted, and escaped; a missing one is "—" with its reason."""

from __future__ import annotations

from html import escape

from edge.cli.report import svg

DASH = "—"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:24px auto;
 max-width:1180px;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:0 0 6px}.lede,.note,small{color:#555}.note{margin:6px 0}
.files{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:12px}
.file{border:1px solid #ddd;border-radius:6px;padding:10px 14px;background:#fafafa}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}dt{color:#555}dd{margin:0}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eee;padding:1px 4px;border-radius:3px;
 word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{border-bottom:1px solid #e5e5e5;padding:4px 6px;text-align:left;vertical-align:top}
thead th{background:#f0f0f0;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.group th{background:#f7f7f7;font-weight:600}.err{color:#b00020}.warn{color:#a15c00}
.tag{font-size:11px;border:1px dashed #0072B2;color:#0072B2;border-radius:3px;padding:0 3px;white-space:nowrap}
.why{display:block;color:#666;font-size:11.5px;max-width:260px}td.k{white-space:nowrap}td.j{min-width:170px}td.t{min-width:110px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:10px}
figure{margin:0;border:1px solid #e5e5e5;border-radius:6px;padding:6px}figcaption{font-size:12.5px}
svg.chart{display:block;max-width:100%;height:auto}svg text{font-size:11px;fill:#333}
svg text.axis{fill:#555}svg text.mark{font-size:10px;fill:#222}svg text.legend{font-size:12px}
"""
COLUMNS = ("#", "artifact", "format", "precision", "runtime", "threads", "affinity", "inputs", "p50 ms", "p90 ms",
           "p99 ms", "throughput /s", "peak MB", "model MB", "energy / inference", "thermal")


def e(value: object) -> str:
    return escape(str(value))


def num(value: object) -> str:
    return svg.number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else DASH


def render(docs: list[dict], names: list[str]) -> str:
    rows = [(f"{i}.{j}", i, r) for i, doc in enumerate(docs, 1) for j, r in enumerate(doc.get("results") or [], 1)]
    body = [
        "<header><h1>edge profile report</h1>",
        (f'<p class="lede">{len(docs)} result file{"s"[:len(docs) != 1]}, {len(rows)} result{"s"[:len(rows) != 1]}. '
         f"Figures are as the files give them; {DASH} marks one that was not measured, with the reason where "
         'known, and estimates are labelled <span class="tag">estimated</span>.</p></header>'),
        '<h2 id="files">Result files</h2><div class="files">',
        *(_file(i, name, doc) for i, (name, doc) in enumerate(zip(names, docs), 1)),
        "</div>",
    ]
    profiles = [(doc, name) for doc, name in zip(docs, names) if "results" in doc]
    if profiles or not docs:
        body += [
            '<h2 id="comparison">Comparison</h2>', _table([d for d, _ in profiles], [n for _, n in profiles], rows),
            '<h2 id="latency-distribution">Latency distribution</h2>', _histograms(rows),
            '<h2 id="latency-threads">Latency p50 against threads</h2>', _threads(rows),
            '<h2 id="energy">Energy per inference</h2>', _energy_chart(rows),
        ]
    tunes = [(doc, name) for doc, name in zip(docs, names) if "trials" in doc]
    if tunes:
        from edge.cli.report.tune import section

        body += ['<h2 id="tune">edge tune: the Pareto front</h2>', *(section(doc, name) for doc, name in tunes)]
    if any(r.get("generation") for _, _, r in rows):  # language models: per token, not per inference
        body += ['<h2 id="generation">Language models: time to first token and decode rate</h2>', _generation(rows)]
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>edge profile report</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _file(i: int, name: str, doc: dict) -> str:
    m = doc.get("machine") or {}
    machine = " · ".join(x for x in (
        m.get("cpu"), m.get("arch"), m.get("cores") is not None and f"{m['cores']} cores",
        m.get("memory_mb") is not None and f"{num(m['memory_mb'])} MB", m.get("os"),
        m.get("python") and f"Python {m['python']}") if x)
    target = f"{m.get('target') or DASH}" + (f" ({m['target_source']})" if m.get("target_source") else "")
    settings = " · ".join(_setting(k, v) for k, v in (doc.get("settings") or {}).items() if v is not None)
    facts = [("machine", e(machine or DASH)), ("target", e(target)), ("created", e(doc.get("created") or DASH)),
             ("edge version", e(doc.get("edge_version") or DASH)),
             ("command", f"<code>{e(doc.get('command') or DASH)}</code>"), ("settings", e(settings or DASH))]
    best = doc.get("best")
    if best:
        facts.append(("fastest", e(f"{best.get('artifact')} on {best.get('runtime')}, {_n_threads(best.get('threads'))}, "
                                   f"affinity {best.get('affinity_label')}: {best.get('by', 'p50')} "
                                   f"{num(best.get('p50_ms'))} ms")))
    shapes = sorted({_shapes(r.get("input_shapes")) for r in doc.get("results") or [] if r.get("input_shapes")})
    if shapes:
        facts.append(("inputs", "<br>".join(e(s) for s in shapes)))
    warnings = [w for w in doc.get("warnings") or [] if isinstance(w, str)]
    if warnings:
        facts.append(("warning", "<br>".join(f'<span class="warn">{e(w)}</span>' for w in warnings)))
    missing = sorted({u for r in doc.get("results") or [] for u in ((r.get("thermal") or {}).get("unavailable") or [])})
    if missing:
        facts.append(("not read", "<br>".join(e(m) for m in missing)))
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<article class="file" id="file-{i}"><h3>{i} · {e(name)}</h3><dl>{items}</dl></article>'


def _setting(key: str, value: object) -> str:
    """("idle_baseline_s", 2.0) -> "idle baseline 2.0 s": the unit a key's suffix names goes after the value."""
    name, unit = (key[:-2], " s") if key.endswith("_s") else (key, "")
    return f"{name.replace('_', ' ')} {value}{unit}"


def _n_threads(threads: object) -> str:
    return f"{threads if threads is not None else '?'} thread{'s'[:threads != 1]}"


def _is_best(doc: dict, r: dict) -> bool:
    best, a, rt = doc.get("best") or {}, r.get("artifact") or {}, r.get("runtime") or {}
    return bool(best) and (best.get("artifact"), best.get("runtime"), best.get("threads"), best.get("affinity_label")) == (
        a.get("name"), rt.get("name"), rt.get("threads"), rt.get("affinity_label"))


def _table(docs: list[dict], names: list[str], rows: list[tuple[str, int, dict]]) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    out = [f'<table class="comparison"><thead><tr>{head}</tr></thead>']
    joules = [j for _, _, r in rows if isinstance(j := (r.get("energy") or {}).get("per_inference_j"), (int, float))]
    unit = _joule_unit(max(joules, default=0))  # one unit down the column, so figures compare at a glance
    for i, (doc, name) in enumerate(zip(docs, names), 1):
        target = (doc.get("machine") or {}).get("target") or DASH
        out.append(f'<tbody><tr class="group"><th colspan="{len(COLUMNS)}">{i} · {e(name)} · {e(target)}</th></tr>')
        said: dict[str, str] = {}  # reasons already given in this file, so a repeated one is named once
        out += [_row(ref, doc, r, unit, said) for ref, fi, r in rows if fi == i]
        out.append("</tbody>")
    out.append("</table>")
    if any(_is_best(d, r) for _, fi, r in rows for d in docs[fi - 1:fi]):
        out.append('<p class="note">★ the fastest result of its file, as the file names it.</p>')
    return "".join(out)


def _shapes(shapes: object) -> str:
    """``{"pixels": [1, 1, 8, 8]}`` -> ``pixels 1×1×8×8``; what the file holds, as it holds it."""
    if not isinstance(shapes, dict):
        return DASH
    return ", ".join(f"{name} " + ("×".join(str(d) for d in dims) if isinstance(dims, list) else str(dims))
                     for name, dims in shapes.items())


def _row(ref: str, doc: dict, r: dict, unit: tuple[float, str], said: dict[str, str]) -> str:
    a, rt = r.get("artifact") or {}, r.get("runtime") or {}
    runtime = " ".join(str(x) for x in (rt.get("name"), rt.get("version")) if x) or DASH
    cpus = rt.get("affinity")
    affinity = (rt.get("affinity_label") or DASH) + (f" ({_cpus(cpus)})" if cpus else "")
    star = " ★" if _is_best(doc, r) else ""
    cells = [f"<td>{ref}{star}</td>", f'<td class="k">{e(a.get("name") or DASH)}</td>', f'<td class="k">{e(a.get("format") or DASH)}</td>',
             f'<td class="k">{e(a.get("precision") or DASH)}</td>', f"<td>{e(runtime)}</td>", f'<td class="n">{num(rt.get("threads"))}</td>',
             f'<td class="k">{e(affinity)}</td>', f'<td class="k">{e(_shapes(r.get("input_shapes")))}</td>']
    if r.get("error"):
        cells.append(f'<td class="err" colspan="{len(COLUMNS) - len(cells)}">error: {e(r["error"])}</td>')
        return f'<tr class="result failed" id="r{ref}">{"".join(cells)}</tr>'
    lat, mem = r.get("latency_ms") or {}, r.get("memory_mb") or {}
    cells += [f'<td class="n">{num(lat.get(k))}</td>' for k in ("p50", "p90", "p99")]
    cells += [f'<td class="n">{num(r.get("throughput_per_s"))}</td>', f'<td class="n">{num(mem.get("peak"))}</td>',
              f'<td class="n">{num(mem.get("model"))}</td>', f'<td class="j">{_energy_cell(r.get("energy"), unit, ref, said)}</td>',
              f'<td class="t">{_thermal_cell(r.get("thermal"))}</td>']
    return f'<tr class="result" id="r{ref}">{"".join(cells)}</tr>'


def _cpus(cpus: list) -> str:
    """[0, 1, 2, 3, 6] -> "0-3,6": a CPU list as taskset writes it."""
    if not all(isinstance(c, int) for c in cpus):
        return ",".join(map(str, cpus))
    spans: list[list[int]] = []
    for c in sorted(cpus):
        if spans and c == spans[-1][1] + 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


def _joule_unit(value: float) -> tuple[float, str]:
    """The factor and unit that put ``value`` joules at 1 or more: (1e3, "mJ") for 0.015."""
    if value == 0:
        return 1, "J"
    return next(((f, u) for f, u in ((1, "J"), (1e3, "mJ"), (1e6, "µJ")) if abs(value) * f >= 1), (1e9, "nJ"))


def _energy_cell(energy: dict | None, unit: tuple[float, str], ref: str, said: dict[str, str]) -> str:
    if not energy:
        return DASH
    if not energy.get("available"):
        reason = energy.get("reason") or "no reason given"
        first = said.setdefault(reason, ref)
        return f'unavailable <span class="why">({e(reason) if first == ref else f"as {first}"})</span>'
    j = energy.get("per_inference_j")
    if not isinstance(j, (int, float)):
        return DASH
    factor, unit = unit
    tag = ' <span class="tag">estimated</span>' if energy.get("confidence") == "estimated" else ""
    how = f'{energy.get("meter", "")}: {energy.get("method", "")} {energy.get("scope", "")}'.strip()
    return f'<span title="{e(how)}">{svg.number(j * factor)} {unit}</span>{tag}'


def _thermal_cell(thermal: dict | None) -> str:
    if not thermal:
        return DASH
    flags = thermal.get("flags") or []
    if flags:
        return "<br>".join(f'<span class="warn">{e(f)}</span>' for f in flags)
    unread = len(thermal.get("unavailable") or [])
    return "none" + (f' <span class="why">({unread} not read)</span>' if unread else "")


def _label(ref: str, r: dict) -> str:
    a, rt = r.get("artifact") or {}, r.get("runtime") or {}
    return f"{ref} {a.get('name') or '?'} · {rt.get('name') or '?'} · {_n_threads(rt.get('threads'))}"


def _histograms(rows: list[tuple[str, int, dict]]) -> str:
    figures = []
    for ref, fi, r in rows:
        lat = r.get("latency_ms") or {}
        samples = [s for s in lat.get("samples") or [] if isinstance(s, (int, float))]
        caption = f"<figcaption><b>{e(_label(ref, r))}</b>"
        if r.get("error") or not samples:
            why = f"error: {r['error']}" if r.get("error") else "no latency samples in the file"
            figures.append(f'<figure>{caption}<p class="err">{e(why)}</p></figcaption></figure>')
            continue
        p99 = lat.get("p99")
        hi = p99 if isinstance(p99, (int, float)) and min(samples) < p99 < max(samples) else max(samples)
        beyond = sum(s > hi for s in samples)
        marks = {k: lat[k] for k in ("p50", "p99") if isinstance(lat.get(k), (int, float))}
        chart = svg.histogram(samples, hi=hi, marks=marks, color=svg.PALETTE[(fi - 1) % len(svg.PALETTE)],
                              label=f"latency histogram of {_label(ref, r)}")
        note = f"{len(samples)} samples" + (f"; {beyond} above p99 not drawn (max {svg.number(max(samples))} ms)" if beyond else "")
        figures.append(f"<figure>{caption}<br><small>{e(note)}</small></figcaption>{chart}</figure>")
    return f'<div class="grid">{"".join(figures)}</div>' if figures else '<p class="note">no results in these files</p>'


def _threads(rows: list[tuple[str, int, dict]]) -> str:
    ok = [(ref, fi, r) for ref, fi, r in rows if not r.get("error") and isinstance((r.get("latency_ms") or {}).get("p50"), (int, float))
          and isinstance((r.get("runtime") or {}).get("threads"), int)]
    several_files = len({fi for _, fi, _ in ok}) > 1
    several_affinities = len({(r.get("runtime") or {}).get("affinity_label") for _, _, r in ok}) > 1
    series: dict[str, list[tuple[float, float]]] = {}
    for _, fi, r in ok:
        a, rt = r.get("artifact") or {}, r["runtime"]
        key = f"{a.get('name') or '?'} · {rt.get('name') or '?'}"
        key += f" · affinity {rt.get('affinity_label')}" if several_affinities else ""
        key += f" · file {fi}" if several_files else ""
        series.setdefault(key, []).append((rt["threads"], r["latency_ms"]["p50"]))
    series = {k: v for k, v in series.items() if len({x for x, _ in v}) > 1}
    if not series:
        return ('<p class="note">no plot: each artifact and runtime was profiled at one thread count only '
                "(profile with several thread counts to compare them)</p>")
    return svg.line_chart(series, x_label="threads", y_label="p50 latency (ms)", label="latency p50 against threads")


def _energy_chart(rows: list[tuple[str, int, dict]]) -> str:
    measured, missing = [], {}
    for ref, _, r in rows:
        energy = r.get("energy") or {}
        if energy.get("available") and isinstance(energy.get("per_inference_j"), (int, float)):
            measured.append((_label(ref, r), energy["per_inference_j"], "estimated" if energy.get("confidence") == "estimated" else ""))
        elif not r.get("error"):
            reason = energy.get("reason") or ("no energy figure in the file" if not energy.get("available") else "no per-inference figure")
            missing.setdefault(reason, []).append(ref)
    why = "; ".join(f"{reason} ({', '.join(refs)})" for reason, refs in missing.items())
    if not measured:
        return f'<p class="note unavailable">energy unavailable: {e(why or "no results")}</p>'
    factor, unit = _joule_unit(max(v for _, v, _ in measured))
    chart = svg.bar_chart([(n, v * factor, note) for n, v, note in measured], unit=unit, label="energy per inference")
    return chart + (f'<p class="note">not plotted, energy unavailable: {e(why)}</p>' if why else "")


def _generation(rows: list[tuple[str, int, dict]]) -> str:
    """A table and two bar charts for the results of language-model bundles (``generation`` records)."""
    head = "".join(f"<th>{c}</th>" for c in ("#", "artifact", "threads", "prompt tokens", "time to first token p50 ms",
                                              "decode ms / token p50", "decode tokens/s", "peak MB", "energy / token"))
    lines, ttft, rate = [f'<table class="comparison"><thead><tr>{head}</tr></thead><tbody>'], [], []
    for ref, _, r in rows:
        g = r.get("generation")
        if not isinstance(g, dict) or r.get("error"):
            continue
        first, step = (g.get("ttft_ms") or {}).get("p50"), (g.get("decode_ms_per_token") or {}).get("p50")
        energy = r.get("energy") or {}
        joules = energy.get("per_inference_j") if energy.get("available") else None
        per_token = (f"{num(joules)} J" + (" (estimated)" if energy.get("confidence") == "estimated" else "")
                     if isinstance(joules, (int, float)) else f"unavailable ({e(energy.get('reason') or 'no meter')})")
        lines.append(f'<tr><td>{ref}</td><td class="k">{e((r.get("artifact") or {}).get("name") or DASH)}</td>'
                     f'<td class="n">{num((r.get("runtime") or {}).get("threads"))}</td>'
                     f'<td class="n">{num(g.get("prompt_tokens"))}</td><td class="n">{num(first)}</td>'
                     f'<td class="n">{num(step)}</td><td class="n">{num(g.get("decode_tokens_per_s"))}</td>'
                     f'<td class="n">{num((r.get("memory_mb") or {}).get("peak"))}</td><td class="j">{per_token}</td></tr>')
        if isinstance(first, (int, float)):
            ttft.append((_label(ref, r), first, ""))
        if isinstance(g.get("decode_tokens_per_s"), (int, float)):
            rate.append((_label(ref, r), g["decode_tokens_per_s"], ""))
    lines.append("</tbody></table>")
    charts = [svg.bar_chart(ttft, unit="ms to first token", label="time to first token")] if ttft else []
    charts += [svg.bar_chart(rate, unit="tokens/s", label="decode tokens per second")] if rate else []
    return "".join(lines) + "".join(charts)
