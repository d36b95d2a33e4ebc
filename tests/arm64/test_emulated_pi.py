"""The emulated Raspberry Pi 4 and 5: the device half of edge, on aarch64, with the device install.

Driven from the host through ``lane.sh`` after ``lane.sh prepare`` (``make test-arm64`` does
both). Correctness only: under QEMU a model runs 20-350x slower than on a Pi, so no figure
measured here is compared with anything.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.emulated,
              pytest.mark.skipif(os.environ.get("EDGE_ARM64") != "1",
                                 reason="the emulated Pi lane: run 'make test-arm64' (root, QEMU)")]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LANE = HERE / "lane.sh"
WORK = Path(os.environ.get("EDGE_ARM64_WORK", REPO / "build/arm64"))
INSIDE = "/opt/edge-tests"
EDGE = "/root/edge/bin/edge"  # where the README's steps put it
# What runs inside needs only the device install and bundles exported on the host.
DEVICE_TESTS = ["test_detect.py", "test_runtime.py", "test_profiler.py", "test_llm_runtime.py", "test_thermal.py",
                "test_sampling.py", "test_textstream.py", "test_bundle.py", "test_meters.py"]


def inside(pi: int, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LANE), "run", str(pi), *argv], capture_output=True, text=True, timeout=timeout)


def on_both(job) -> dict[int, object]:
    """``job(pi)`` for the Pi 4 and the Pi 5 at once (two emulated CPUs keep both host cores busy)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futures = {pi: pool.submit(job, pi) for pi in (4, 5)}
        return {pi: f.result() for pi, f in futures.items()}


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


def test_device_tests_pass_inside_pi4_and_pi5():
    tests = [f"{INSIDE}/tests/{name}" for name in DEVICE_TESTS]

    def suite(pi: int) -> subprocess.CompletedProcess:
        return inside(pi, "/usr/bin/env", f"EDGE_HOST_BUNDLES={INSIDE}/bundles", "/root/edge/bin/python", "-m", "pytest",
                      "-p", "no:cacheprovider", "-q", "-m", "not slow and not export", *tests, timeout=1800)

    for pi, done in on_both(suite).items():
        assert done.returncode == 0, f"Pi {pi}: " + _explain(done)
        assert " passed" in done.stdout and " failed" not in done.stdout


def test_detect_profile_and_run_on_pi4_and_pi5():
    import edge
    from edge.device import inputs

    def check(pi: int) -> None:
        target = f"rpi{pi}"
        bundles = f"{INSIDE}/bundles/{target}"
        detected = inside(pi, EDGE, "detect", "--json")
        assert detected.returncode == 0, _explain(detected)
        facts = json.loads(detected.stdout)
        assert (facts["target"], facts["arch"]) == (target, "aarch64")

        out = f"{INSIDE}/profile-{target}.json"
        profiled = inside(pi, EDGE, "profile", f"{bundles}/digits-all", "--runs", "3", "--warmup", "1", "--idle", "0.1",
                          "-o", out)
        assert profiled.returncode == 0, _explain(profiled)
        doc = json.loads((WORK / "root" / out.lstrip("/")).read_text())
        assert (doc["machine"]["arch"], doc["machine"]["target"]) == ("aarch64", target)
        assert {r["runtime"]["name"] for r in doc["results"]} == {"onnxruntime", "litert"}
        assert all(r["error"] is None for r in doc["results"]), [r["error"] for r in doc["results"]]

        # the outputs match the host's for the same artifact (the image decoded by Pillow on both sides)
        saved = f"{INSIDE}/run-{target}.npz"
        ran = inside(pi, EDGE, "run", f"{bundles}/digits-all", "--input", f"{INSIDE}/examples/digits/images/2_000.png",
                     "--save", saved)
        assert ran.returncode == 0 and "logits" in ran.stdout, _explain(ran)
        host = WORK / "bundles" / target / "digits-all"
        model = edge.load(host, target=target)
        assert f"{model.choice.artifact} on " in ran.stderr, (ran.stderr, model.choice)
        preprocessing = json.loads((host / "manifest.json").read_text())["preprocessing"]
        here = model.run(inputs.from_file(REPO / "examples/digits/images/2_000.png", model, preprocessing))
        there = np.load(WORK / "root" / saved.lstrip("/"))
        np.testing.assert_allclose(there["logits"], here["logits"], atol=1e-4)

        generated = inside(pi, EDGE, "run", f"{bundles}/lm", "--prompt", "The module is", "--max-new-tokens", "8")
        assert generated.returncode == 0 and generated.stdout.strip(), _explain(generated)

    on_both(check)


def test_profile_over_ssh_on_the_emulated_pi4(tmp_path):
    """`edge profile --device ssh://root@127.0.0.1:PORT` against an sshd inside the emulated Pi 4."""
    from tests.sshd import free_port, keygen

    keys = tmp_path / "keys"
    keys.mkdir()
    keygen(keys / "host_key")
    keygen(keys / "client_key")
    port = free_port()
    server = subprocess.Popen(["bash", str(LANE), "sshd", "4", str(port), str(keys)], stdout=subprocess.DEVNULL,
                              stderr=(tmp_path / "sshd.log").open("wb"), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (tmp_path / "sshd.log").read_text()
            time.sleep(0.5)
        kind, key = (keys / "host_key.pub").read_text().split()[:2]
        (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {kind} {key}\n")
        (tmp_path / "ssh_config").write_text(f"Host *\n  IdentityFile {keys / 'client_key'}\n  IdentitiesOnly yes\n"
                                             f"  UserKnownHostsFile {tmp_path / 'known_hosts'}\n")
        out = tmp_path / "results"
        done = subprocess.run([sys.executable, "-m", "edge", "profile", str(WORK / "bundles/rpi4/digits"),
                               "--device", f"ssh://root@127.0.0.1:{port}", "--ssh-config", str(tmp_path / "ssh_config"),
                               "--runs", "3", "--warmup", "1", "--idle", "0.1", "-o", str(out)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, _explain(done)
        (result,) = out.glob("*.json")
        doc = json.loads(result.read_text())
        assert (doc["machine"]["arch"], doc["machine"]["target"]) == ("aarch64", "rpi4")
        assert doc["results"] and all(r["error"] is None for r in doc["results"])

        # edge tune there, briefly: the choice comes back into the host's copy for target rpi4
        import shutil

        bundle = Path(shutil.copytree(WORK / "bundles/rpi4/digits", tmp_path / "digits"))
        tuned = subprocess.run([sys.executable, "-m", "edge", "tune", str(bundle), "--device", f"ssh://root@127.0.0.1:{port}",
                                "--ssh-config", str(tmp_path / "ssh_config"), "--max-minutes", "1.5"],
                               capture_output=True, text=True, timeout=900)
        assert tuned.returncode == 0, _explain(tuned)
        (record,) = json.loads((bundle / "manifest.json").read_text())["tuned"]
        assert record["target"] == "rpi4" and (bundle / record["table"]).is_file()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # unshare, chroot and sshd: their mounts go with them
        server.wait(timeout=30)
