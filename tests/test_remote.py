"""Remote devices over SSH, against real OpenSSH servers the tests start on 127.0.0.1.

Each "device" is Debian's sshd with its own host key, logging in as the user running the
tests with HOME in a test folder and edge from this venv on its PATH. A device that drops the
connection or hangs is an sshd whose ForceCommand does that to the real command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.core.errors import ConfigError, UsageError
from edge.remote.devices import Device, load_fleet
from tests.sshd import Sshd, keygen

VENV_BIN = Path(sys.executable).parent
EDGE = VENV_BIN / "edge"
PATH = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"

# Run the real command, except that a command running `edge profile` first loses its connection:
# the wrapper kills the sshd process that serves this session, as a device losing power would.
DROP = """#!/usr/bin/env python3
import os, sys
command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
if " profile " in command:
    pid = os.getppid()
    while pid > 1:
        name = open(f"/proc/{pid}/comm").read().strip()
        if name == "sshd":
            os.kill(pid, 9)
            break
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
os.execv("/bin/sh", ["sh", "-c", command])
"""

# A device that answers logins but never finishes a profile.
HANG = """#!/bin/sh
case "$SSH_ORIGINAL_COMMAND" in *" profile "*) sleep 120 ;; esac
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""


def _device(tmp_path: Path, name: str, wrapper: str | None = None, like: Sshd | None = None) -> Sshd:
    """A device; ``like`` shares its client key and known_hosts (and so its ssh_config) with another."""
    folder = tmp_path / name
    folder.mkdir()
    force = None
    if wrapper:
        force = str(folder / "wrapper")
        Path(force).write_text(wrapper)
        os.chmod(force, 0o755)
    shared = {"client_key": like.client_key, "known_hosts": like.known_hosts} if like else {}
    return Sshd(folder, force_command=force, path=PATH, **shared).start()


@pytest.fixture
def device(tmp_path):
    server = _device(tmp_path, "pi")
    yield server
    server.stop()


# --- devices and fleet files ---------------------------------------------------------------

@pytest.mark.parametrize("url,name", [
    ("ssh://pi@10.0.0.7", "pi@10.0.0.7"), ("ssh://pi@10.0.0.7:2222", "pi@10.0.0.7_2222"),
    ("ssh://kitchen-pi.local", "kitchen-pi.local"), ("ssh://root@[::1]:22", "root@___1__22")])
def test_device_urls(url, name):
    assert Device.parse(url).name == name


@pytest.mark.parametrize("url", ["pi@10.0.0.7", "ssh://", "ssh://-oProxyCommand=sh@x", "ssh://pi@-oProxyCommand=x",
                                 "ssh://pi@host;rm", "ssh://pi@host/path", "ssh://pi:secret@host", "ssh://pi@host:99999"])
def test_bad_device_urls_are_refused(url):
    with pytest.raises(UsageError):
        Device.parse(url)


def test_fleet_file(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('ssh_config = "/dev/null"\n[[device]]\nname = "kitchen"\nurl = "ssh://pi@10.0.0.7"\ntarget = "rpi4"\n'
                     '[[device]]\nurl = "ssh://pi@10.0.0.8:2200"\ntimeout = 60\n')
    a, b = load_fleet(fleet)
    assert (a.name, a.target, a.ssh_config, b.name, b.port, b.timeout_s) == ("kitchen", "rpi4", Path("/dev/null"), "pi@10.0.0.8_2200", 2200, 60)


@pytest.mark.parametrize("body,message", [
    ('[[device]]\nurl = "ssh://a"\ntargte = "rpi4"\n', "did you mean"),
    ('[[device]]\nurl = "ssh://a"\ntarget = "rpi9"\n', "rpi9"),
    ('[[device]]\nurl = "ssh://a"\n[[device]]\nurl = "ssh://a"\n', "unique"),
    ('[[device]]\nname = "a/b"\nurl = "ssh://a"\n', "letters"),
])
def test_bad_fleet_files(tmp_path, body, message):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_fleet(fleet)
    assert message in caught.value.message + (caught.value.hint or "")


# --- the device-side agent, run by a real python3 as over SSH ---------------------------------

def _agent(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    source = (Path(__file__).parents[1] / "edge/remote/agent.py").read_text()
    return subprocess.run(["python3", "-c", source, *args], input=stdin, capture_output=True)


def _frame(path: str, data: bytes, digest: str | None = None) -> bytes:
    import hashlib

    header = {"path": path, "size": len(data), "sha256": digest or hashlib.sha256(data).hexdigest()}
    return json.dumps(header).encode() + b"\n" + data


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b"])
def test_agent_refuses_paths_outside_its_folder(tmp_path, name):
    done = _agent("receive", str(tmp_path / "in"), stdin=_frame(name, b"x") + b'{"end": true}\n')
    assert done.returncode != 0 and b"outside the destination" in done.stderr
    assert not (tmp_path / "escape").exists()


def test_agent_receives_checks_and_lists(tmp_path):
    stream = _frame("a.bin", b"abc") + _frame("sub/b.bin", b"defg") + b'{"end": true}\n'
    assert json.loads(_agent("receive", str(tmp_path), stdin=stream).stdout) == {"received": 2}
    listed = json.loads(_agent("digests", str(tmp_path)).stdout)
    assert sorted(listed) == ["a.bin", "sub/b.bin"]
    damaged = _agent("receive", str(tmp_path), stdin=_frame("c.bin", b"xyz", digest="0" * 64) + b'{"end": true}\n')
    assert damaged.returncode != 0 and b"damaged" in damaged.stderr
    assert not (tmp_path / "c.bin").exists() and not (tmp_path / "c.bin.part").exists()


# --- real sshd --------------------------------------------------------------------------------

def test_profile_on_a_device_copies_only_what_is_missing(edge_cli, device, digits_bundle, tmp_path):
    out = tmp_path / "results"
    first = edge_cli("profile", digits_bundle, "--device", device.device_url, "--ssh-config", device.ssh_config,
                     "--runs", "5", "--warmup", "1", "--threads", "1", "--artifact", "fp32", "-o", out)
    assert first.code == 0, first
    files = list(out.glob("*.json"))
    assert len(files) == 1 and "sending" in first.stderr
    doc = json.loads(files[0].read_text())
    assert doc["schema"] == "edge.profile/1" and doc["results"][0]["latency_ms"]["p50"] > 0
    assert "--runs 5" in doc["command"] and "--threads 1" in doc["command"]
    # the same bundle again, to another folder: nothing is sent
    again = edge_cli("profile", digits_bundle, "--device", device.device_url, "--ssh-config", device.ssh_config,
                     "--runs", "5", "--warmup", "1", "--threads", "1", "--artifact", "fp32", "-o", tmp_path / "again")
    assert again.code == 0, again
    assert "already there" in again.stderr and "sending" not in again.stderr
    # the same folder: skipped, not measured again
    skip = edge_cli("profile", digits_bundle, "--device", device.device_url, "--ssh-config", device.ssh_config, "-o", out)
    assert skip.code == 0 and "skipped" in skip.stdout


def test_tune_on_a_device_brings_the_choice_back(edge_cli, device, digits_bundle, tmp_path):
    import shutil

    from edge.core.bundle import read_manifest

    from conftest import host_target

    bundle = Path(shutil.copytree(digits_bundle, tmp_path / "digits"))
    done = edge_cli("tune", bundle, "--device", device.device_url, "--ssh-config", device.ssh_config, "--max-minutes", "2")
    assert done.code == 0, done
    [tuned] = read_manifest(bundle).tuned  # the loopback device is this machine: its target is the host's
    assert tuned.target == host_target() and (bundle / tuned.table).is_file()
    table = json.loads((bundle / tuned.table).read_text())
    assert table["schema"] == "edge.tune/1" and table["complete"] and "[runtimes]" in done.stderr
    assert "done" in done.stdout and "chosen:" in done.stdout  # the device's own summary, prefixed with its name


def test_fleet_with_a_device_that_drops(edge_cli, tmp_path, digits_bundle):
    first = _device(tmp_path, "a")
    servers = [first, _device(tmp_path, "b", like=first), _device(tmp_path, "c", wrapper=DROP, like=first)]
    try:
        fleet = tmp_path / "fleet.toml"
        fleet.write_text(f'ssh_config = "{first.ssh_config}"\n' +
                         "".join(f'[[device]]\nname = "pi-{s.folder.name}"\nurl = "{s.device_url}"\n' for s in servers))
        out = tmp_path / "results"
        args = ["profile", digits_bundle, "--fleet", fleet, "--runs", "3", "--warmup", "1",
                "--threads", "1", "--artifact", "fp32", "-o", out]
        result = edge_cli(*args)
        assert result.code == 10, result
        assert sorted(p.name for p in out.glob("*.json")) == ["pi-a.json", "pi-b.json"]
        assert "1 of 3 devices failed (2 finished)" in result.stderr
        assert "pi-c" in result.stderr and "connection dropped" in result.stderr, result
        again = edge_cli(*args)  # a rerun skips the two finished devices and tries the third again
        assert again.code == 10 and again.stdout.count("skipped pi-") == 2 and "connection dropped" in again.stderr
    finally:
        for s in servers:
            s.stop()


def test_changed_host_key_is_refused(edge_cli, device, tmp_path):
    other = keygen(tmp_path / "other")
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    device.known_hosts.write_text(f"[127.0.0.1]:{device.port} {kind} {key}\n")
    result = edge_cli("detect", "--device", device.device_url, "--ssh-config", device.ssh_config, "--accept-new-host-keys")
    assert result.code == 10, result
    assert "host key CHANGED" in result.stderr and "ssh-keygen -R" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_host_key_needs_consent(edge_cli, device):
    device.known_hosts.write_text("")
    refused = edge_cli("detect", "--device", device.device_url, "--ssh-config", device.ssh_config)
    assert refused.code == 10 and "not in known_hosts" in refused.stderr, refused
    accepted = edge_cli("detect", "--json", "--device", device.device_url, "--ssh-config", device.ssh_config,
                        "--accept-new-host-keys")
    assert accepted.code == 0, accepted
    assert str(device.port) in device.known_hosts.read_text()


def test_a_hanging_device_times_out(edge_cli, tmp_path, digits_bundle):
    server = _device(tmp_path, "slow", wrapper=HANG)
    try:
        started = time.monotonic()
        result = edge_cli("profile", digits_bundle, "--device", server.device_url, "--ssh-config", server.ssh_config,
                          "--timeout", "8", "-o", tmp_path / "out")
        assert result.code == 10 and "no answer within" in result.stderr, result
        assert time.monotonic() - started < 60
    finally:
        server.stop()


def test_shell_metacharacters_stay_arguments(edge_cli, device, digits_bundle, tmp_path):
    """A bundle folder, an input file and the output named with shell syntax reach the device as plain names."""
    import shutil

    hostile = tmp_path / "a b;touch PWNED;$(touch PWNED2)"
    shutil.copytree(digits_bundle, hostile)
    feed = tmp_path / "x`touch PWNED3`'.npy"
    np.save(feed, np.zeros((1, 1, 8, 8), np.float32))
    result = edge_cli("run", hostile, "--input", feed, "--device", device.device_url, "--ssh-config", device.ssh_config)
    assert result.code == 0, result
    assert "logits" in result.stdout
    leaked = [p for p in (device.home, tmp_path, Path.cwd()) for p in p.rglob("PWNED*")]
    assert not leaked


def test_device_without_edge_says_bootstrap(edge_cli, tmp_path):
    server = Sshd(tmp_path / "bare", path="/usr/bin:/bin").start()
    try:
        result = edge_cli("detect", "--device", server.device_url, "--ssh-config", server.ssh_config)
        assert result.code == 10 and "has no edge" in result.stderr and "--bootstrap" in result.stderr, result
    finally:
        server.stop()


def test_ctrl_c_keeps_what_arrived(tmp_path, digits_bundle):
    fast = _device(tmp_path, "fast")
    slow = _device(tmp_path, "slow", wrapper=HANG, like=fast)
    try:
        out = tmp_path / "results"
        argv = [str(EDGE), "profile", str(digits_bundle), "--device", fast.device_url, "--device", slow.device_url,
                "--ssh-config", str(fast.ssh_config), "--runs", "3", "--threads", "1", "--artifact", "fp32", "-o", str(out)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 120
        while not list(out.glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole foreground group
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, (stdout, stderr)
        assert [p.name for p in out.glob("*.json")] == [f"{fast.user}@127.0.0.1_{fast.port}.json"]
        assert b"interrupted" in stderr and b"Traceback" not in stderr
    finally:
        fast.stop()
        slow.stop()


@pytest.mark.slow
def test_bootstrap_installs_edge_from_host_wheels(edge_cli, tmp_path):
    """A device with python3 and no edge gets a venv from wheels this host sends (no index used there)."""
    server = Sshd(tmp_path / "bare", path="/usr/bin:/bin").start()
    try:
        args = ("detect", "--json", "--device", server.device_url, "--ssh-config", server.ssh_config)
        result = edge_cli(*args, "--bootstrap")
        assert result.code == 0, result
        assert (server.home / ".cache/edge/venv/bin/edge").exists()
        found = json.loads(result.stdout)
        assert list(found) == [Device.parse(server.device_url).name]
        again = edge_cli(*args)  # found there now, without --bootstrap
        assert again.code == 0, again
    finally:
        server.stop()
