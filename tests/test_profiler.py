"""edge profile: real onnxruntime and LiteRT runs in child processes, on the digits bundle and a shipped .tflite.

Nothing here asserts a speed: only that every figure is there, consistent and honestly labelled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.device.detect import read_facts
from edge.core.errors import InputNotFoundError, UsageError
from edge.device.profiler import ProfileOptions, parse_threads, profile
from edge.device.profiler.child import spawn, timed
from edge.device.profiler.plan import affinity_sets, thread_counts
from edge.device.profiler.stats import summary
from edge.device.runtime import BACKENDS

from conftest import DATA, _package_dir, handmade_manifest, host_target, manifest_of

FAST = {"runs": 30, "warmup": 2, "idle_s": 0.05}
RESULT_KEYS = {"artifact", "runtime", "error", "latency_ms", "throughput_per_s", "loop_overhead_ms", "memory_mb",
               "energy", "thermal", "pid", "input_shapes", "generation"}
LATENCY_KEYS = {"init", "first", "warmup_count", "count", "mean", "std", "min", "p50", "p90", "p99", "max", "samples"}
MEMORY_KEYS = {"after_imports", "after_init", "init_delta", "peak", "model", "method"}
ENERGY_KEYS = {"available", "meter", "method", "scope", "sample_rate_hz", "confidence", "inferences", "duration_s",
               "total_j", "per_inference_j", "average_w", "idle_w", "idle_duration_s", "above_idle_per_inference_j"}


@pytest.fixture(scope="module")
def wakeword() -> Path:
    """A real 200 KB TFLite model (input [1, 16, 96] float32) shipped in pyopen-wakeword."""
    return _package_dir("pyopen_wakeword") / "models" / "okay_nabu.tflite"


def _usable() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _check_measured(result: dict, runs: int) -> None:
    assert set(result) == RESULT_KEYS and result["error"] is None
    lat = result["latency_ms"]
    assert set(lat) == LATENCY_KEYS
    assert lat["count"] == runs == len(lat["samples"])
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"] and lat["init"] > 0 and lat["first"] > 0
    assert min(lat["samples"]) == lat["min"] and max(lat["samples"]) == lat["max"]
    assert result["throughput_per_s"] > 0
    assert result["loop_overhead_ms"]["per_iteration"] > 0 and "no-op" in result["loop_overhead_ms"]["method"]
    mem = result["memory_mb"]
    assert set(mem) == MEMORY_KEYS and mem["peak"] >= mem["after_imports"] > 0
    assert mem["model"] == pytest.approx(mem["peak"] - mem["after_imports"], abs=0.02)
    assert set(result["thermal"]) == {"before", "after", "flags", "unavailable"}
    assert result["runtime"]["version"] and result["runtime"]["settings"]


def test_digits_bundle_on_onnxruntime(edge_cli, digits_bundle, tmp_path):
    out = tmp_path / "p.json"
    r = edge_cli("profile", digits_bundle, "--artifact", "fp32", "--runs", 40, "--warmup", 3, "--threads", 1,
                 "--sysfs-root", tmp_path, "-o", out)
    assert r.code == 0, r
    assert "model.fp32.onnx" in r.stdout and "best:" in r.stdout and str(out) in r.stderr
    doc = json.loads(out.read_text())
    assert list(doc)[:1] == ["schema"] and doc["schema"] == "edge.profile/1"
    assert {"created", "edge_version", "command", "machine", "settings", "results", "best"} <= set(doc)
    assert doc["settings"] == {"runs": 40, "duration_s": None, "warmup": 3, "idle_baseline_s": 2.0,
                               "inputs": "random within the manifest's ranges (seed 0); pixels [1, 1, 8, 8]"}
    (result,) = doc["results"]
    _check_measured(result, 40)
    fp32 = next(a for a in manifest_of(digits_bundle)["artifacts"] if a["name"] == "fp32")
    assert result["artifact"] == {"name": "model.fp32.onnx", "bundle": str(digits_bundle), "format": "onnx",
                                  "precision": "fp32", "sha256": fp32["sha256"], "size_bytes": fp32["size"]}
    runtime = result["runtime"]
    assert runtime["name"] == "onnxruntime" and runtime["threads"] == 1 and runtime["affinity_label"] == "all"
    assert {"arena", "mem_pattern", "allow_spinning"} <= set(runtime["settings"])
    assert "clear_refs" in result["memory_mb"]["method"]
    # an empty tree: no powercap, so energy is unavailable with the reason, never 0
    energy = result["energy"]
    # (the reason names the host target's first meter: RAPL on x86, hwmon on a Pi)
    assert energy["available"] is False and len(energy["reason"]) > 10 and "total_j" not in energy
    assert doc["best"]["artifact"] == "model.fp32.onnx" and doc["best"]["by"] == "p50"
    assert doc["best"]["p50_ms"] == result["latency_ms"]["p50"]
    assert "--runs 40" in doc["command"] and "--threads 1" in doc["command"]


def test_thread_sweep_runs_each_count_in_its_own_process(digits_bundle):
    result = profile(digits_bundle, ProfileOptions(threads="sweep", artifacts=("fp32",), **FAST))
    threads = [r.runtime.threads for r in result.results]
    assert threads == list(range(1, _usable() + 1))
    pids = [r.pid for r in result.results]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert result.best is not None and result.best.threads in threads
    assert result.best.p50_ms == min(r.latency_ms.p50 for r in result.results)


def test_litert_on_a_bare_tflite_file(wakeword, tmp_path):
    seen = []
    options = ProfileOptions(runtime="litert", threads=1, root=tmp_path, on_progress=lambda *a: seen.append(a), **FAST)
    result = profile(wakeword, options)
    doc = result.to_dict()
    (r,) = doc["results"]
    _check_measured(r, FAST["runs"])
    assert r["artifact"]["bundle"] is None and r["artifact"]["format"] == "tflite" and r["artifact"]["precision"] is None
    assert r["artifact"]["sha256"] == hashlib.sha256(wakeword.read_bytes()).hexdigest()
    assert r["runtime"]["name"] == "litert" and r["runtime"]["version"]
    assert "bare file" in doc["settings"]["inputs"]
    assert seen[0][:2] == (0, 1) and seen[-1][:2] == (1, 1)


def test_duration_instead_of_runs(wakeword, tmp_path):
    result = profile(wakeword, ProfileOptions(duration_s=0.05, warmup=1, idle_s=0.05, threads=1, root=tmp_path))
    (r,) = result.results
    assert result.settings.runs is None and result.settings.duration_s == 0.05
    assert r.latency_ms.count == len(r.latency_ms.samples) >= 2
    assert sum(r.latency_ms.samples) >= 0.045 * 1000  # the timed calls fill the 50 ms, in ms


def test_input_file_and_the_default_output(edge_cli, digits_bundle, tmp_path, monkeypatch):
    good = tmp_path / "x.npz"
    np.savez(good, pixels=np.random.default_rng(1).random((1, 1, 8, 8), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    r = edge_cli("profile", digits_bundle, "--artifact", "fp32", "--input", good, "--runs", 10, "--threads", 1)
    assert r.code == 0, r
    out = tmp_path / f"profile-{digits_bundle.name}.json"  # in the current folder, named after the bundle
    assert f"wrote profile-{digits_bundle.name}.json" in r.stderr
    assert json.loads(out.read_text())["settings"]["inputs"] == "file x.npz"


@pytest.mark.parametrize("arrays, message", [
    ({"image": np.zeros((1, 1, 8, 8), np.float32)}, "missing pixels"),
    ({"pixels": np.zeros((1, 3, 8, 8), np.float32)}, "expected shape"),
    ({"pixels": np.zeros((1, 1, 8, 8), np.float64)}, "expected dtype float32"),
])
def test_bad_input_file_is_a_usage_error(edge_cli, digits_bundle, tmp_path, arrays, message):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    r = edge_cli("profile", digits_bundle, "--artifact", "fp32", "--input", bad, "--runs", 5, "-o", tmp_path / "p.json")
    assert r.code == UsageError.exit_code, r
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p.json").exists()


def test_user_errors_map_to_exit_codes(edge_cli, digits_bundle, tmp_path):
    assert edge_cli("profile", tmp_path / "nope").code == InputNotFoundError.exit_code
    assert edge_cli("profile", digits_bundle, "--input", tmp_path / "none.npz").code == InputNotFoundError.exit_code
    assert edge_cli("profile", digits_bundle, "--runtime", "mxnet").code == 2  # click refuses the choice
    for args, text in ((["--threads", "many"], "bad --threads"), (["--artifact", "fp64"], "no artifact fp64"),
                       (["--runs", "5", "--duration", "1"], "not both"), (["--meter", "wattmeter"], "unknown meter"),
                       (["--runtime", "litert"], "cannot run any artifact")):
        r = edge_cli("profile", digits_bundle, *args, "-o", tmp_path / "p.json")
        assert r.code == UsageError.exit_code and text in r.stderr, (args, r)


@pytest.mark.skipif(BACKENDS["tflite-runtime"].installed(), reason="tflite-runtime is installed here")
def test_runtime_not_installed(edge_cli, wakeword):
    r = edge_cli("profile", wakeword, "--runtime", "tflite-runtime")
    assert r.code == 9 and "pip install tflite-runtime" in r.stderr


def test_energy_from_a_recorded_rapl_tree(wakeword, tmp_path):
    root = Path(shutil.copytree(DATA / "energy/x86-rapl-mangohud1776", tmp_path / "rapl"))
    result = profile(wakeword, ProfileOptions(threads=1, meter="rapl", root=root, **FAST))
    energy = result.results[0].energy
    assert set(energy) == ENERGY_KEYS and energy["available"] is True
    assert energy["meter"] == "rapl" and energy["confidence"] == "measured" and "package" in energy["scope"]
    assert energy["sample_rate_hz"] is None  # a cumulative counter
    assert energy["idle_duration_s"] >= FAST["idle_s"] and energy["duration_s"] >= FAST["idle_s"]
    assert energy["inferences"] >= FAST["runs"]  # the timed runs, then more until the window is as long as the idle one
    # the recorded counter does not move: the figure is exactly what it read, 0 J, not an invented one
    assert energy["total_j"] == 0.0 and energy["idle_w"] == 0.0 and energy["per_inference_j"] == 0.0


def test_a_failing_configuration_does_not_stop_the_others(edge_cli, wakeword, tmp_path):
    bundle = tmp_path / "two"
    bundle.mkdir()
    shutil.copy(wakeword, bundle / "good.tflite")
    (bundle / "broken.tflite").write_bytes(b"TFL3 this is not a flatbuffer" * 10)
    from edge.core.bundle import Artifact, write_manifest
    from edge.device.runtime import backend

    spec = backend("litert").open(wakeword).inputs[0].to_json()  # the name the session feeds by
    artifacts = [Artifact(name, "tflite", f"{name}.tflite", (bundle / f"{name}.tflite").stat().st_size,
                          hashlib.sha256((bundle / f"{name}.tflite").read_bytes()).hexdigest(), "fp32")
                 for name in ("broken", "good")]
    write_manifest(bundle, handmade_manifest(artifacts, [spec], [], ["litert"]))
    out = tmp_path / "p.json"
    r = edge_cli("profile", bundle, "--runs", 5, "--warmup", 1, "-o", out)
    assert r.code == 0, r
    broken, good = json.loads(out.read_text())["results"]
    assert broken["error"] and "LiteRT cannot load broken.tflite" in broken["error"]
    assert all(broken[k] is None for k in ("latency_ms", "memory_mb", "energy", "thermal"))
    assert good["error"] is None and good["latency_ms"]["count"] == 5
    assert "error broken.tflite" in r.stdout
    # nothing measurable at all: the file is still written, and the command fails
    r = edge_cli("profile", bundle, "--artifact", "broken", "--runs", 5, "-o", out)
    assert r.code == 1 and "no configuration could be measured" in r.stderr
    assert json.loads(out.read_text())["best"] is None


def test_a_crashing_child_becomes_an_error(tmp_path, wakeword):
    request = {"artifact": str(wakeword), "runtime": "litert", "threads": 1, "affinity": [10_000],  # no such CPU
               "result": str(tmp_path / "r.json")}
    outcome = spawn(request, timeout_s=60)
    assert "measuring process failed (exit 1)" in outcome["error"] and "OSError" in outcome["error"]


def test_big_little_sweep_tries_big_cores_alone_then_all():
    facts = read_facts(DATA / "machines/android-arm64")
    assert facts.heterogeneous
    cpus = [c.index for c in facts.cores]
    sets = dict(affinity_sets(facts, cpus, "all", sweep=True))
    assert set(sets) == {"big", "all"} and set(sets["big"]) < set(sets["all"]) == set(cpus)
    assert sets["big"] == [c for c in facts.big_cores()]
    assert affinity_sets(facts, cpus, "big", sweep=False) == [("big", sets["big"])]
    assert thread_counts("sweep", sets["big"], 0) == list(range(1, len(sets["big"]) + 1))
    assert thread_counts(None, cpus, 0) == [len(cpus)] and thread_counts(None, cpus, 2) == [2]
    homogeneous = read_facts(DATA / "machines/rpi4")
    assert affinity_sets(homogeneous, [0, 1, 2, 3], "big", sweep=True) == [("all", [0, 1, 2, 3])]


def test_stats_and_the_timing_loop():
    s = summary([3_000_000, 1_000_000, 2_000_000, 4_000_000])
    assert s["count"] == 4 and s["min"] == 1.0 and s["max"] == 4.0 and s["p50"] == 2.5 and s["mean"] == 2.5
    calls = []
    assert len(timed(calls.append, 1, runs=7)) == 7 and calls == [1] * 7
    assert len(timed(calls.append, 1, runs=None, duration_ns=1)) == 1  # the clock is past 1 ns after one call
    import time

    slept = timed(time.sleep, 0.001, runs=None, duration_ns=3_000_000)  # runs until 3 ms have passed
    # it stops at the first call that ends past the deadline (however slow a busy machine makes each sleep)
    assert sum(slept[:-1]) < 3_000_000 and sum(slept) >= 2_900_000 and min(slept) >= 1_000_000
    assert parse_threads("sweep") == "sweep" and parse_threads("3") == 3 and parse_threads(None) is None
    with pytest.raises(UsageError):
        parse_threads("0")


@pytest.fixture(scope="module")
def digits_both(tmp_path_factory) -> Path:
    """The digits example for this machine's class with every artifact its profile has, ONNX and TFLite."""
    from click.testing import CliRunner

    from edge.cli import main

    from conftest import DIGITS

    out = tmp_path_factory.mktemp("both") / "digits"
    result = CliRunner().invoke(main, ["export", DIGITS, "--target", host_target(), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_every_artifact_in_the_runtime_of_its_format(edge_cli, digits_both, tmp_path):
    out = tmp_path / "all.json"
    done = edge_cli("profile", digits_both, "--runs", "30", "--threads", "1", "-o", out)
    assert done.code == 0, done
    results = json.loads(out.read_text())["results"]
    formats = {a["path"]: a["format"] for a in manifest_of(digits_both)["artifacts"]}
    assert sorted(r["artifact"]["name"] for r in results) == sorted(formats)
    assert {"onnx", "tflite"} == set(formats.values())
    for r in results:
        _check_measured(r, 30)
        assert r["runtime"]["name"] == {"onnx": "onnxruntime", "tflite": "litert"}[r["artifact"]["format"]]
        energy = r["energy"]  # a meter's figure with its name, or unavailable with the reason: never a silent 0 J
        assert (energy["available"] and energy["meter"] and energy["per_inference_j"] > 0) or \
            (energy["available"] is False and energy["reason"])
    assert "mJ/inf" in done.stdout and "model.tflite-fp32.tflite" in done.stdout


@pytest.mark.slow
def test_minilm_in_both_runtimes(edge_cli, minilm_dir, tmp_path):
    bundle = tmp_path / "minilm"
    done = edge_cli("export", minilm_dir, "-t", "x86-avx512", "-o", bundle, "--dim", "sequence=128",
                    "--variant", "fp32", "--variant", "tflite-fp32", "--no-simplify")
    assert done.code == 0, done
    out = tmp_path / "minilm.json"
    done = edge_cli("profile", bundle, "--runs", "10", "--threads", "1", "-o", out)
    assert done.code == 0, done
    written = json.loads(out.read_text())
    # the ONNX artifact's open sequence axis is profiled at the TFLite file's 128, not a default
    assert "input_ids [1, 128]" in written["settings"]["inputs"]
    results = {r["runtime"]["name"]: r for r in written["results"]}
    assert set(results) == {"onnxruntime", "litert"}
    for r in results.values():
        _check_measured(r, 10)
        assert r["memory_mb"]["model"] > 50  # ~90 MB of weights: the model's memory is visible


def test_throttling_that_begins_mid_run_is_flagged(edge_cli, wakeword, tmp_path, monkeypatch):
    """A fake vcgencmd on PATH answers the first get_throttled with the recorded idle state of a
    Pi 3B+ and later ones with the same board's recorded loaded state (0x80008)."""
    idle = (DATA / "energy/rpi3bplus-gopilgc-oakd-idle/vcgencmd/get_throttled.txt").read_text().strip()
    load = (DATA / "energy/rpi3bplus-gopilgc-oakd-load/vcgencmd/get_throttled.txt").read_text().strip()
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    script = bin_dir / "vcgencmd"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get_throttled ] || {{ echo "error=1 error_msg=\\"Command not registered\\""; exit 255; }}\n'
        f'if [ -f "{calls}" ]; then echo "{load}"; else touch "{calls}"; echo "{idle}"; fi\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "t.json"
    done = edge_cli("profile", wakeword, "--runs", "20", "--threads", "1", "-o", out)
    assert done.code == 0, done
    (result,) = json.loads(out.read_text())["results"]
    assert result["thermal"]["before"]["throttled"] == "0x0" and result["thermal"]["after"]["throttled"] == "0x80008"
    assert "throttling began during the run: soft temperature limit active" in result["thermal"]["flags"]
    assert "throttling began during the run" in done.stdout


def _detector(tmp_path: Path) -> Path:
    """A conv 'detector' whose height and width are open, as Ultralytics exports them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["maps"], pads=[1, 1, 1, 1])], "det",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["batch", 4, "height", "width"])], [weight])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.export
def test_profile_feeds_the_size_the_bundle_was_exported_at(edge_cli, tmp_path):
    source = _detector(tmp_path)
    sized, open_ = tmp_path / "sized", tmp_path / "open"
    for out, dims in ((sized, ["--dim", "height=320", "--dim", "width=256"]), (open_, [])):
        done = edge_cli("export", source, "-t", host_target(), "-o", out, "--variant", "fp32", *dims)
        assert done.code == 0, done
    assert manifest_of(sized)["dims"] == {"height": 320, "width": 256} and manifest_of(open_)["dims"] == {}

    out = tmp_path / "sized.json"
    done = edge_cli("profile", sized, "--runs", 3, "--warmup", 1, "--threads", 1, "-o", out)
    assert done.code == 0, done
    doc = json.loads(out.read_text())
    assert doc["results"][0]["input_shapes"] == {"images": [1, 3, 320, 256]} and doc["warnings"] == []
    assert "inputs: images [1, 3, 320, 256]" in done.stdout

    # nothing recorded: a guess, said loudly, and the shape it was fed in the result
    out = tmp_path / "open.json"
    done = edge_cli("profile", open_, "--runs", 3, "--warmup", 1, "--threads", 1, "-o", out)
    assert done.code == 0, done
    doc = json.loads(out.read_text())
    assert doc["results"][0]["input_shapes"] == {"images": [1, 3, 32, 32]}
    assert [w.split(":")[0] for w in doc["warnings"]] == ["input axis 'height' has no size in the bundle or on the command line",
                                                          "input axis 'width' has no size in the bundle or on the command line"]
    assert "--dim height=N" in doc["warnings"][0] and "warning: input axis 'height'" in done.stdout

    # --dim wins over both, and is part of the command that repeats the run
    out = tmp_path / "given.json"
    done = edge_cli("profile", sized, "--runs", 3, "--warmup", 1, "--threads", 1, "--dim", "height=64", "-o", out)
    assert done.code == 0, done
    doc = json.loads(out.read_text())
    assert doc["results"][0]["input_shapes"] == {"images": [1, 3, 64, 256]} and "--dim height=64" in doc["command"]
    assert edge_cli("profile", sized, "--dim", "height=0").code == UsageError.exit_code
