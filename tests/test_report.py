"""`edge report`: the HTML page from `edge profile` results, checked as text and in headless Chromium.

Result files here follow docs/profile-schema.md: tests/data/profile/digits-x86.json is a small
hand-made fixture (it says so in its `_comment`), and `_pi5_doc` builds a second machine's file
with measured and estimated energy and a thermal flag. Neither is a measurement; one test
profiles the digits bundle for real and reports on that.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from edge.cli import report
from edge.core.errors import InputNotFoundError, UsageError
from edge.cli.report import svg

FIXTURE = DATA / "profile" / "digits-x86.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _result(threads: int, base_ms: float, energy: dict | None, flags: list[str], seed: int) -> dict:
    samples = np.round(base_ms * np.random.default_rng(seed).lognormal(0, 0.06, 120), 4)
    pct = {f"p{q}": round(float(np.percentile(samples, q)), 4) for q in (50, 90, 99)}
    return {
        "artifact": {"name": "model.int8.tflite", "bundle": "build/digits", "format": "tflite", "precision": "int8-static",
                     "sha256": "2" * 64, "size_bytes": 30000},
        "runtime": {"name": "litert", "version": "1.4.0", "threads": threads, "affinity": list(range(threads)),
                    "affinity_label": "all", "settings": {"xnnpack": True}},
        "error": None,
        "latency_ms": {"init": 3.0, "first": 0.9, "warmup_count": 10, "count": len(samples), "mean": float(samples.mean()),
                       "std": float(samples.std()), "min": float(samples.min()), "max": float(samples.max()), **pct,
                       "samples": samples.tolist()},
        "throughput_per_s": round(1000 / float(samples.mean()), 1),
        "loop_overhead_ms": {"per_iteration": 0.001, "method": "same timing loop around a no-op call"},
        "memory_mb": {"after_imports": 30.0, "after_init": 31.5, "init_delta": 1.5, "peak": 32.25, "model": 2.25,
                      "method": "VmRSS/VmHWM"},
        "energy": energy,
        "thermal": {"before": None, "after": None, "flags": flags, "unavailable": []},
    }


def _energy(per_inference_j: float, confidence: str = "measured") -> dict:
    return {"available": True, "meter": "rpi5-pmic", "method": "PMIC rails sampled in a child process",
            "scope": "whole board", "sample_rate_hz": 50, "confidence": confidence, "duration_s": 2.0,
            "total_j": per_inference_j * 1000, "per_inference_j": per_inference_j, "average_w": 3.2,
            "idle_w": 2.7, "idle_duration_s": 2.0, "above_idle_per_inference_j": per_inference_j / 4}


def _pi5_doc() -> dict:
    doc = json.loads(FIXTURE.read_text())
    doc.update(command="edge profile build/digits --threads 1,2,4", best=None)
    doc["machine"] = {"target": "rpi5", "target_source": "detected", "arch": "aarch64", "cpu": "Cortex-A76 (fixture)",
                      "cores": 4, "memory_mb": 8052, "os": "Linux 6.6", "python": "3.11.2"}
    doc["results"] = [
        _result(1, 0.21, _energy(0.00125), [], seed=1),
        _result(2, 0.14, _energy(0.00105, "estimated"), [], seed=2),
        _result(4, 0.11, _energy(0.00098), ["throttling began during the run: soft temperature limit active"], seed=3),
    ]
    return doc


@pytest.fixture
def x86() -> dict:
    return report.load(FIXTURE)


# --- reading files ---------------------------------------------------------------------------------------

def test_load_accepts_the_fixture_and_rejects_other_schemas(tmp_path, x86):
    assert x86["machine"]["target"] == "x86-avx512" and len(x86["results"]) == 5
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**x86, "schema": "edge.profile/2"}))
    with pytest.raises(UsageError, match=r"wrong.json is not an edge profile or tune result: it has schema 'edge.profile/2', expected 'edge.profile/1' or 'edge.tune/1'"):
        report.load(wrong)
    wrong.write_text(json.dumps([1, 2]))
    with pytest.raises(UsageError, match="has no 'schema' field"):
        report.load(wrong)
    wrong.write_text("{not json")
    with pytest.raises(UsageError, match="is not a JSON file"):
        report.load(wrong)
    with pytest.raises(InputNotFoundError, match="no such file"):
        report.load(tmp_path / "absent.json")


def test_cli_wrong_schema_is_one_line_and_exit_2(edge_cli, tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"schema": "edge.core.bundle/1", "results": []}))
    out = tmp_path / "report.html"
    result = edge_cli("report", FIXTURE, bad, "-o", out)
    assert result.code == 2, result
    assert "error: " in result.stderr and "is not an edge profile or tune result" in result.stderr and "edge.profile/1" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_cli_writes_the_page_atomically_and_prints_its_path(edge_cli, tmp_path):
    out = tmp_path / "site" / "report.html"
    result = edge_cli("report", FIXTURE, "-o", out)
    assert result.code == 0, result
    assert str(out) in result.stdout.replace("\n", "")
    assert out.read_text().startswith("<!doctype html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left behind


# --- what the page says ----------------------------------------------------------------------------------

def test_figures_come_from_the_file(x86):
    page = report.render_html([x86], names=["digits-x86.json"])
    first = x86["results"][0]
    for key in ("p50", "p90", "p99"):
        assert f">{first['latency_ms'][key]}<" in page  # four decimals in the file, three significant digits shown
    assert "x86-avx512 (detected)" in page and "edge profile build/digits --threads 1,2 --runs 40" in page
    assert "unavailable <span class=\"why\">(no RAPL zones under /sys/class/powercap (a container or VM))" in page
    assert page.count('<span class="why">(as 1.1)</span>') == 3  # a repeated reason is named once per file
    assert "energy unavailable: no RAPL zones under /sys/class/powercap (a container or VM) (1.1, 1.2, 1.3, 1.4)" in page
    assert "error: litert could not load model.tflite: &lt;Didn&#x27;t find op for builtin opcode &#x27;GELU&#x27;&gt; &amp; co" in page
    assert page.count('<tr class="result') == 5 and page.count('class="result failed"') == 1
    assert "temperature: no /sys/class/thermal/thermal_zone*" in page  # a reading the file says it could not take


def test_estimated_energy_is_labelled_and_thermal_flags_shown():
    page = report.render_html([_pi5_doc()])
    assert page.count('<span class="tag">estimated</span>') == 2  # the table cell, and the legend line in the header
    assert "1.05 mJ (estimated)" in page and "1.25 mJ<" in page and "0.980 mJ<" in page
    assert "throttling began during the run: soft temperature limit active" in page


def test_missing_figures_are_dashes_not_zeros(x86):
    doc = copy.deepcopy(x86)
    r = doc["results"][0]
    r["memory_mb"] = None
    r["throughput_per_s"] = None
    r["energy"] = {"available": False, "reason": "meter busy"}
    r["input_shapes"] = {"pixels": [1, 1, 8, 8]}
    page = report.render_html([doc])
    row = page.split('id="r1.1">')[1].split("</tr>")[0]
    assert row.count(">—<") == 3 and "(meter busy)" in row and ">pixels 1×1×8×8<" in row
    del r["input_shapes"]  # a file written before edge recorded shapes: a dash, not a made-up shape
    row = report.render_html([doc]).split('id="r1.1">')[1].split("</tr>")[0]
    assert row.count(">—<") == 4


def test_all_text_is_escaped(x86):
    doc = copy.deepcopy(x86)
    doc["command"] = "edge profile '<script>alert(1)</script>'"
    doc["results"][0]["artifact"]["name"] = "<img src=x onerror=alert(1)>.onnx"
    page = report.render_html([doc], names=["<b>.json"])
    assert "<script" not in page and "<img" not in page and "<b>.json" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.onnx" in page and "&lt;b&gt;.json" in page


def test_page_is_self_contained(x86):
    page = report.render_html([x86, _pi5_doc()])
    for outside in ("<script", "src=", "href=", "url(", "@import", "http:", "https:", "<link"):
        assert outside not in page


def test_threads_plot_needs_several_thread_counts(x86):
    doc = copy.deepcopy(x86)
    doc["results"] = [r for r in doc["results"] if (r["runtime"]["threads"] == 1)]
    page = report.render_html([doc])
    assert "no plot: each artifact and runtime was profiled at one thread count only" in page
    assert "<polyline" not in page
    assert report.render_html([x86]).count("<polyline") == 2  # model.onnx and model.int8.onnx, at 1 and 2 threads


def test_report_of_a_real_profile(digits_bundle, edge_cli, tmp_path):
    written = tmp_path / "profile-digits.json"
    profiled = edge_cli("profile", digits_bundle, "--target", "x86-avx512", "--threads", "sweep", "--runs", "30",
                        "--warmup", "2", "--idle", "0.1", "-o", written)
    assert profiled.code == 0, profiled
    doc = report.load(written)
    out = tmp_path / "report.html"
    result = edge_cli("report", written, "-o", out)
    assert result.code == 0, result
    page = out.read_text()
    measured = [r for r in doc["results"] if not r["error"]]
    assert page.count('<tr class="result') == len(doc["results"]) and measured
    assert page.count('<svg class="chart"') >= len(measured)  # a histogram each, and the other plots
    for r in measured:
        assert f'>{svg.number(r["latency_ms"]["p50"])}<' in page
        assert f'{len(r["latency_ms"]["samples"])} samples' in page


# --- in a real browser -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    if not CHROMIUM.exists():
        if os.environ.get("EDGE_REQUIRE_CHROMIUM"):
            pytest.fail("EDGE_REQUIRE_CHROMIUM is set but /usr/bin/chromium is missing: apt-get install -y chromium")
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium; EDGE_REQUIRE_CHROMIUM=1 makes this fail)")

    def run(*args: str) -> subprocess.CompletedProcess:
        profile = tmp_path_factory.mktemp("chromium-profile")  # a new empty profile per run
        return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=False)

    return run


class _Elements(HTMLParser):
    """Counts elements by tag and by tag.class in a DOM that Chromium serialised."""

    def __init__(self) -> None:
        super().__init__()
        self.count: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        names = [tag] + [f"{tag}.{c}" for c in (dict(attrs).get("class") or "").split()]
        for name in names:
            self.count[name] = self.count.get(name, 0) + 1


def test_page_renders_in_headless_chromium(chromium, tmp_path, x86):
    page = tmp_path / "report.html"
    report.write(report.render_html([x86, _pi5_doc()], names=["digits-x86.json", "digits-pi5.json"]), page)

    started = time.perf_counter()
    dom = chromium("--dump-dom", page.as_uri())
    dump_s = time.perf_counter() - started
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = _Elements()
    seen.feed(dom.stdout)
    # 4 + 3 histograms (the failed litert result has none), one line chart, one bar chart
    assert seen.count.get("svg.chart") == 9, seen.count
    assert seen.count.get("tr.result") == 8 and seen.count.get("tr.failed") == 1
    assert seen.count.get("rect", 0) > 50 and seen.count.get("polyline") == 3  # x86: 2 series, pi5: 1

    shot = tmp_path / "report.png"
    started = time.perf_counter()
    done = chromium(f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri())
    shot_s = time.perf_counter() - started
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    from PIL import Image, ImageStat

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 20  # not a blank page
    pixels = np.asarray(image, dtype=np.int16)
    bars = int((np.abs(pixels - (0x00, 0x72, 0xB2)).max(axis=2) < 30).sum())
    assert bars > 2000, "the blue histogram bars are not painted"
    print(f"chromium: dump-dom {dump_s:.1f} s, screenshot {shot_s:.1f} s")
