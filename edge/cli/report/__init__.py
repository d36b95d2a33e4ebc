"""``edge report``: one self-contained HTML page from ``edge profile`` results (schema ``edge.profile/1``)
and ``edge tune`` tables (``edge.tune/1``, drawn as their Pareto front of latency, memory and energy).

The page holds a header per result file, one comparison table across every result, and three plots
(latency distribution, p50 against threads, energy per inference) drawn as inline SVG: no scripts
and nothing fetched, so it opens offline and can be mailed as one file. Every figure on it comes from
the files as written; a missing one shows as "—" with the reason where the file gives one::

    from edge.cli import report

    docs = [report.load("rpi5.json"), report.load("minipc.json")]
    report.write(report.render_html(docs, names=["rpi5.json", "minipc.json"]), "report.html")

The layout and the pieces of the page live in ``edge.cli.report.page``; the charts in ``edge.cli.report.svg``.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge.core.errors import EdgeError, InputNotFoundError, UsageError
from edge.cli.report import page
from edge.device.profiler.result import SCHEMA
from edge.device.tune.table import SCHEMA as TUNE_SCHEMA

__all__ = ["SCHEMA", "load", "render_html", "write"]

_HINT = "give a RESULT.json written by 'edge profile', or BUNDLE/tune/TARGET.json written by 'edge tune'"


def load(path: str | Path) -> dict:
    """Read one ``edge profile`` result file, refusing anything that is not ``edge.profile/1``.

    >>> doc = load("build/digits-profile.json")   # doctest: +SKIP
    >>> doc["machine"]["target"]                  # doctest: +SKIP
    'x86-avx512'
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no such file: {path}", hint="check the path")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a JSON file ({exc})", hint=_HINT) from exc
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema not in (SCHEMA, TUNE_SCHEMA):
        found = "has no 'schema' field" if schema is None else f"has schema {schema!r}"
        raise UsageError(f"{path} is not an edge profile or tune result: it {found}, expected {SCHEMA!r} or "
                         f"{TUNE_SCHEMA!r}", hint=_HINT)
    key = "results" if schema == SCHEMA else "trials"
    if not isinstance(doc.get(key), list) or not all(isinstance(r, dict) for r in doc[key]):
        raise UsageError(f"{path} is damaged: '{key}' is not a list of objects", hint=_HINT)
    return doc


def render_html(results: list[dict], names: list[str] | None = None) -> str:
    """The report page for loaded result files (as from ``load``), in the order given.

    ``names`` labels each file (its file name, say); by default they are numbered.

    >>> html = render_html([load("a.json"), load("b.json")], names=["a.json", "b.json"])  # doctest: +SKIP
    """
    names = list(names) if names else [f"result {i}" for i in range(1, len(results) + 1)]
    if len(names) != len(results):
        raise ValueError(f"{len(names)} names for {len(results)} result files")
    return page.render(results, names)


def write(html: str, path: str | Path) -> Path:
    """Write the page to ``path`` atomically (a temporary file beside it, then a rename), so a reader
    never sees half a page; returns the path written."""
    from edge.core.files import write_atomic

    path = Path(path)
    try:
        write_atomic(path, html.encode("utf-8"))
    except OSError as exc:
        raise EdgeError(f"cannot write {path}: {exc.strerror or exc}", hint="choose another -o path") from exc
    return path
