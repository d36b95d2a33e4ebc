"""edge tune: real measuring processes on the digits bundle (a copy per test: tuning writes into it).

Nothing here asserts a speed: which configuration wins depends on the host. The tests check what
must hold on any host: only gate-passing artifacts are measured and chosen, the choice is the
lowest measured value among the survivors, edge.load follows it on this machine class and not on
another, an interruption keeps the measurements and a rerun replays them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edge
from edge.core.bundle import read_manifest
from edge.device.tune.race import Bound, Rounds, bound, dominated, noise, race

from conftest import DATA, host_target, manifest_of


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(digits_bundle, tmp_path / "digits"))


def table_of(bundle: Path, target: str | None = None) -> dict:
    return json.loads((bundle / "tune" / f"{target or host_target()}.json").read_text())


def test_tune_writes_a_choice_that_load_follows(bundle, edge_cli):
    result = edge_cli("tune", bundle, "--max-minutes", "3")
    assert result.code == 0, result
    doc = table_of(bundle)
    assert doc["schema"] == "edge.tune/1" and doc["complete"] and doc["stopped"] is None
    [tuned] = read_manifest(bundle).tuned
    assert tuned.target == host_target() and tuned.machine["cpus"] == os.cpu_count() and tuned.complete
    chosen = next(t for t in doc["trials"] if t["key"] == doc["choice"])
    assert (chosen["artifact"], chosen["runtime"], chosen["threads"]) == (tuned.artifact, tuned.runtime, tuned.threads)
    # the choice is the lowest median among the finalists (those given the final round)
    final = {e["key"] for e in doc["log"] if e["stage"] == "final"}
    assert chosen["key"] in final
    assert chosen["objective"]["value"] == min(t["objective"]["value"] for t in doc["trials"] if t["key"] in final)
    # every artifact was tried in the first stage, at 1..N threads in the second for the best
    assert {t["artifact"] for t in doc["trials"] if t["stage"] == "runtimes"} == {a.name for a in read_manifest(bundle).artifacts}
    assert {t["threads"] for t in doc["trials"] if t["artifact"] == chosen["artifact"]} >= set(range(1, len(os.sched_getaffinity(0)) + 1))
    assert any(t["settings"] for t in doc["trials"]), "no runtime setting was tried"
    model = edge.load(bundle)
    assert (model.choice.artifact, model.choice.runtime, model.choice.threads) == (tuned.artifact, tuned.runtime, tuned.threads)
    assert model.choice.reason.startswith("tuned on this machine class") and model.choice.notes == ()
    shown = edge_cli("inspect", bundle)
    assert f"tuned for {host_target()}" in shown.stdout and "tune/" in shown.stdout


def test_a_gate_failing_artifact_is_never_measured_nor_chosen(bundle, edge_cli):
    data = manifest_of(bundle)
    failed = [a["name"] for a in data["artifacts"] if a["gate"] is not None]
    assert failed, "the digits bundle has no quantized artifact"
    for artifact in data["artifacts"]:
        if artifact["gate"] is not None:
            artifact["gate"]["passed"] = False  # as a bundle exported with --no-strict on another day would hold it
    data["preferred"] = failed + [n for n in data["preferred"] if n not in failed]
    (bundle / "manifest.json").write_text(json.dumps(data))
    result = edge_cli("tune", bundle, "--max-minutes", "3")
    assert result.code == 0, result
    doc = table_of(bundle)
    assert {t["artifact"] for t in doc["trials"]} == {"fp32"}
    assert {s["artifact"] for s in doc["skipped"]} == set(failed)
    assert all("gate" in s["reason"] for s in doc["skipped"]) and "not tried" in result.stdout
    assert read_manifest(bundle).tuned[0].artifact == "fp32"
    # a tuned choice naming a failed artifact (a damaged or hand-edited manifest) is not followed either
    data = manifest_of(bundle)
    data["tuned"][0]["artifact"] = failed[0]
    (bundle / "manifest.json").write_text(json.dumps(data))
    model = edge.load(bundle)
    assert model.choice.artifact == "fp32" and "failed its check" in model.choice.notes[0]


def test_a_choice_tuned_for_another_target_is_ignored_with_a_note(bundle, edge_cli):
    # the search runs here, but the machine it records is the recorded Raspberry Pi 5 (/proc below --sysfs-root)
    result = edge_cli("tune", bundle, "--max-minutes", "3", "--sysfs-root", DATA / "machines" / "rpi5")
    assert result.code == 0, result
    [tuned] = read_manifest(bundle).tuned
    assert tuned.target == "rpi5"
    model = edge.load(bundle)
    assert not model.choice.reason.startswith("tuned")
    assert "rpi5" in model.choice.notes[0] and "not applied" in model.choice.notes[0]
    digit = Path(__file__).parent.parent / "examples" / "digits" / "images" / "0_017.png"
    ran = edge_cli("run", bundle, "--input", digit)
    assert ran.code == 0 and "not applied" in (ran.stdout + ran.stderr)
    # tuning here as well adds this machine's choice beside the Pi's; load takes this one
    assert edge_cli("tune", bundle, "--max-minutes", "3").code == 0
    assert {t.target for t in read_manifest(bundle).tuned} == {"rpi5", host_target()}
    assert edge.load(bundle).choice.reason.startswith("tuned on this machine class")


def test_ctrl_c_keeps_the_measurements_and_a_rerun_replays_them(bundle, edge_cli):
    command = [sys.executable, "-m", "edge", "tune", str(bundle), "--max-minutes", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    path = bundle / "tune" / f"{host_target()}.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(json.loads(path.read_text())["log"]) >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal sends the whole group on Ctrl-C
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert b"run the same command to go on" in stderr
    kept = json.loads(path.read_text())
    assert not kept["complete"] and len(kept["log"]) >= 3
    assert read_manifest(bundle).tuned == []  # no choice from half a search
    result = edge_cli("tune", bundle, "--max-minutes", "5")
    assert result.code == 0, result
    doc = table_of(bundle)
    assert doc["complete"] and doc["replayed"] == len(kept["log"])
    assert [e["key"] for e in doc["log"][:len(kept["log"])]] == [e["key"] for e in kept["log"]]
    assert f"{len(kept['log'])} replayed" in result.stdout


def test_the_time_limit_stops_the_search_and_a_rerun_goes_on(bundle, edge_cli):
    result = edge_cli("tune", bundle, "--max-minutes", "0.05")
    assert result.code == 0, result
    assert "time limit" in result.stderr
    doc = table_of(bundle)
    assert not doc["complete"] and doc["measurements"] >= 1
    [tuned] = read_manifest(bundle).tuned
    shown = " ".join(edge_cli("inspect", bundle).stdout.split())  # rich wraps at the terminal width
    assert not tuned.complete and "stopped at its time limit" in shown
    again = edge_cli("tune", bundle, "--max-minutes", "3")
    assert again.code == 0 and table_of(bundle)["complete"]
    assert table_of(bundle)["replayed"] == doc["measurements"]


def test_fresh_discards_and_a_changed_objective_starts_over(bundle, edge_cli):
    assert edge_cli("tune", bundle, "--max-minutes", "0.05").code == 0
    result = edge_cli("tune", bundle, "--max-minutes", "0.05", "--objective", "memory")
    assert result.code == 0, result
    doc = table_of(bundle)
    assert doc["replayed"] == 0 and "objective changed" in doc["notes"][0]
    assert edge_cli("tune", bundle, "--max-minutes", "0.05", "--objective", "memory", "--fresh").code == 0
    assert table_of(bundle)["replayed"] == 0 and table_of(bundle)["objective"] == "memory"


def test_user_errors_are_one_line(bundle, edge_cli, tmp_path):
    missing = edge_cli("tune", tmp_path / "nothing")
    assert missing.code == 3 and "no such bundle" in missing.stderr
    # an x86 mini PC recorded without its powercap tree: no meter, so no energy objective
    energy = edge_cli("tune", bundle, "--objective", "energy", "--sysfs-root", DATA / "machines" / "n100")
    assert energy.code == 2 and "needs an energy meter" in energy.stderr and "Traceback" not in energy.stderr
    assert edge_cli("tune", bundle, "--max-minutes", "0").code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_bundle_is_refused_before_measuring(bundle, edge_cli):
    bundle.chmod(0o555)
    try:
        result = edge_cli("tune", bundle)
    finally:
        bundle.chmod(0o755)
    assert result.code == 2 and "cannot write the tune table" in result.stderr


# The race itself, on rounds given as data (what the measuring processes return).

def rounds(*medians_and_samples: list[float]) -> Rounds:
    return Rounds([{"latency_ms": {"p50": sorted(s)[len(s) // 2], "samples": s}, "memory_mb": {"peak": 10.0}}
                   for s in medians_and_samples])


def test_the_bound_covers_the_spread_of_the_rounds_and_the_process_noise():
    steady = bound(rounds([10.0] * 50), "latency")
    assert steady.low == pytest.approx(9.7) and steady.high == pytest.approx(10.3)  # the 3 % floor
    spread = bound(rounds([10.0] * 50, [12.0] * 50), "latency")
    assert spread.low <= 10.0 and spread.high >= 12.0
    # two processes of one configuration 20 % apart: every bound widens to +-20 %
    assert noise([rounds([10.0] * 50, [12.0] * 50), rounds([5.0] * 9)], "latency") == pytest.approx(2 / 11)
    floor = noise([rounds([10.0] * 50, [12.0] * 50)], "latency")
    wide = bound(rounds([10.0] * 50), "latency", floor)
    assert wide.high == pytest.approx(10 * (1 + 2 / 11))
    assert not dominated(bound(rounds([13.0] * 30), "latency", floor), wide)  # 30 % slower is within that noise
    assert dominated(bound(rounds([16.0] * 30), "latency", floor), wide)
    assert dominated(bound(rounds([13.0] * 30), "latency"), steady)
    assert not dominated(bound(rounds([10.1] * 30), "latency"), steady)
    assert dominated(None, steady) and bound(Rounds([{"error": "crashed"}]), "latency") is None


def test_the_race_stops_measuring_what_is_clearly_slower():
    class T:
        def __init__(self, key, ms):
            self.key, self.ms = key, ms

    store: dict[str, Rounds] = {}
    calls: list[str] = []

    def measure(trial, index, size):
        calls.append(trial.key)
        store[trial.key].results.append(rounds([trial.ms + 0.01 * i for i in range(20)]).results[0])

    trials = [T("fast", 5.0), T("close", 5.05), T("slow", 9.0)]
    for t in trials:
        store[t.key] = Rounds()
    ranked = race(trials, lambda t: store[t.key], measure, "latency", (0.2, 0.4, 0.8))
    assert [t.key for t in ranked] == ["fast", "close"]
    assert calls.count("slow") == 1 and calls.count("fast") == 3 and calls.count("close") == 3


def test_report_draws_the_pareto_front_of_a_tune_table(bundle, edge_cli, tmp_path):
    assert edge_cli("tune", bundle, "--max-minutes", "3").code == 0
    doc = table_of(bundle)
    front = [t for t in doc["trials"] if t["pareto"]]
    assert front, "no configuration on the Pareto front"
    for t in front:  # nothing measured beats a front configuration on both latency and memory
        assert not any(o["p50_ms"] < t["p50_ms"] and o["peak_mb"] < t["peak_mb"] for o in doc["trials"] if not o["error"])
    out = tmp_path / "tune.html"
    result = edge_cli("report", bundle / "tune" / f"{host_target()}.json", "-o", out)
    assert result.code == 0, result
    html = out.read_text()
    assert "the Pareto front" in html and "not measured in this search" in html
    measured = [t for t in doc["trials"] if not t["error"] and t["peak_mb"]]
    assert html.count("<circle") == len(measured) + 1  # one dot each, and the ring around the choice


@pytest.mark.export
def test_a_language_model_is_tuned_per_decoded_token(tmp_path, edge_cli):
    from llm_models import save

    folder = save("llama", tmp_path / "llama")
    bundle = tmp_path / "bundle"
    assert edge_cli("export", folder, "-t", host_target(), "-o", bundle, "--variant", "int8-weights").code == 0
    result = edge_cli("tune", bundle, "--max-minutes", "3", "--prompt-tokens", "16")
    assert result.code == 0, result
    doc = table_of(bundle)
    assert {t["artifact"] for t in doc["trials"] if t["stage"] == "runtimes"} == {"fp32", "int8-weights"}
    chosen = next(t for t in doc["trials"] if t["key"] == doc["choice"])
    assert chosen["ttft_ms"] is not None and chosen["objective"]["unit"] == "ms"
    # every round is one generation after the warm-up's: its samples are decode steps, one per token
    for entry in doc["log"]:
        generation = entry["result"]["generation"]
        assert generation["decode_ms_per_token"]["count"] == entry["result"]["latency_ms"]["count"]
    model = edge.load(bundle)
    assert model.choice.reason.startswith("tuned") and model.choice.artifact == chosen["artifact"]


def test_on_big_little_the_threads_stage_tries_the_big_cores_alone_and_all_cores(digits_bundle):
    """A recorded 9-core phone (one prime core): each core set at every thread count it holds."""
    from edge.core.bundle import read_manifest
    from edge.device.detect import read_facts
    from edge.device.profiler.plan import read_source
    from edge.device.tune.space import space

    facts = read_facts(DATA / "machines" / "android-arm64")
    found = space(read_source(digits_bundle), read_manifest(digits_bundle), facts, list(range(9)))
    assert found.core_sets == {"big": facts.big_cores(), "all": list(range(9))}
    trials = found.thread_trials(found.default)
    assert sorted((t.cores, t.threads) for t in trials) == sorted(
        [("big", n) for n in range(1, len(facts.big_cores()) + 1)] + [("all", n) for n in range(1, 10)])
