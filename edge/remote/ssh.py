"""SSH through the system's OpenSSH client, one multiplexed connection per device.

Why the system client rather than asyncssh or Paramiko (measured and argued in docs/remote.md):
it is already on every machine that reaches a Pi, it reads the user's ``~/.ssh/config``
(aliases, ProxyJump, keys, agent) and ``known_hosts`` exactly as ``ssh`` does, and it adds no
dependency to edge. One master connection per device (``ControlMaster``) makes each later
command cost a channel, not a handshake.

Commands are argument lists. OpenSSH sends one string that the device's login shell parses,
so every argument is quoted with ``shlex.join``: a bundle named ``a b;rm -rf ~`` or a prompt
holding ``$(...)`` reaches the device as the same single argument, never as shell syntax.

    >>> t = SshTransport(Device.parse("ssh://pi@192.168.1.20"), Path("/tmp/ctl"))  # doctest: +SKIP
    >>> t.connect(); t.run(["uname", "-m"], timeout=10).stdout                      # doctest: +SKIP
    b'aarch64\\n'
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.core.errors import DeviceError, last_line
from edge.remote.devices import Device

log = logging.getLogger(__name__)

# BatchMode: never prompt (a prompt would hang a fleet); keepalives notice a device that vanished
# within about 15 s; ConnectTimeout bounds an unreachable one.
OPTIONS = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
           "-o", "ConnectTimeout=15")


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str  # the last lines, for messages


class Transport(Protocol):
    """What a remote job needs from a connection to one device."""

    def connect(self, timeout: float) -> None: ...

    def run(self, argv: list[str], *, timeout: float, stdin: Iterable[bytes] | None = None,
            on_stdout: Callable[[bytes], None] | None = None,
            on_stderr: Callable[[str], None] | None = None) -> Completed: ...

    def close(self) -> None: ...


class SshTransport:
    """The system ``ssh`` client, multiplexed through a master connection in ``control_dir``."""

    def __init__(self, device: Device, control_dir: Path, accept_new_host_key: bool = False) -> None:
        self.device = device
        # a socket path must stay under ~100 bytes: a digest, not the name
        self._control = control_dir / hashlib.sha1(device.url.encode()).hexdigest()[:16]
        self._log = self._control.with_suffix(".log")
        self._checking = "accept-new" if accept_new_host_key else "yes"
        self._connected = False

    def _ssh(self, *extra: str) -> list[str]:
        d = self.device
        argv = ["ssh", *OPTIONS, "-o", f"StrictHostKeyChecking={self._checking}", "-o", f"ControlPath={self._control}"]
        if d.ssh_config:
            argv += ["-F", str(d.ssh_config)]
        if d.port:
            argv += ["-p", str(d.port)]
        if d.user:
            argv += ["-l", d.user]
        return argv + list(extra) + ["--", d.host]

    def connect(self, timeout: float = 60.0) -> None:
        """Open the master connection: host key check and login happen here, once."""
        # -f leaves the master in the background; -E gives it a log instead of our stderr, where it
        # says why it failed now, or why the connection died later (a session through it only exits 255).
        self._log.unlink(missing_ok=True)
        argv = self._ssh("-o", "ControlMaster=yes", "-o", "ControlPersist=120", "-o", "LogLevel=INFO", "-f", "-N",
                         "-E", str(self._log))
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"{self.device.name}: no SSH connection within {timeout:.0f} s") from exc
        except FileNotFoundError as exc:
            raise DeviceError("the 'ssh' command is not installed", hint="install OpenSSH's client (apt install openssh-client)") from exc
        if done.returncode != 0:
            raise connection_error(self.device, self._master_log() + done.stderr.decode("utf-8", "replace"))
        self._connected = True

    def _master_log(self) -> str:
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def run(self, argv: list[str], *, timeout: float, stdin: Iterable[bytes] | None = None,
            on_stdout: Callable[[bytes], None] | None = None,
            on_stderr: Callable[[str], None] | None = None) -> Completed:
        """Run ``argv`` on the device; stream its output to the callbacks; kill it after ``timeout`` s."""
        command = self._ssh("-o", "ControlMaster=no", "-o", "LogLevel=ERROR") + [shlex.join(argv)]
        log.debug("ssh %s: %s", self.device.name, shlex.join(argv)[:300])
        proc = subprocess.Popen(command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out: list[bytes] = []
        err: list[str] = []
        readers = [threading.Thread(target=_read_out, args=(proc.stdout, out, on_stdout), daemon=True),
                   threading.Thread(target=_read_err, args=(proc.stderr, err, on_stderr), daemon=True)]
        if stdin is not None:
            readers.append(threading.Thread(target=_write, args=(proc.stdin, stdin), daemon=True))
        for thread in readers:
            thread.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise DeviceError(f"{self.device.name}: no answer within {timeout:.0f} s (killed)",
                              hint="raise the device's timeout (--timeout, or 'timeout' in the fleet file)") from exc
        finally:
            for thread in readers:
                thread.join(timeout=5)
        stderr = "\n".join(err[-40:])
        if code == 255:
            if not stderr.strip():  # through the master, the reason is in its log (written a moment later)
                time.sleep(0.3)
                stderr = self._master_log()
            raise dropped_error(self.device, stderr)
        return Completed(code, b"".join(out), stderr)

    def close(self) -> None:
        if self._connected:
            subprocess.run(self._ssh("-O", "exit"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            self._connected = False


def connection_error(device: Device, stderr: str) -> DeviceError:
    """One line for why ssh could not log in, with what to do."""
    last = last_line(stderr, 200, "ssh gave no reason")
    where = f"[{device.host}]:{device.port}" if device.port else device.host
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key for" in stderr and "has changed" in stderr:
        return DeviceError(f"{device.name}: its host key CHANGED since it was recorded in known_hosts; refusing to connect "
                           "(a reinstalled device, or someone in between)",
                           hint=f"if the device was reinstalled, check its new key and remove the old one: ssh-keygen -R '{where}'")
    if "Host key verification failed" in stderr or "No ED25519 host key is known" in stderr or "host key is known" in stderr:
        return DeviceError(f"{device.name}: its host key is not in known_hosts, so it cannot be verified",
                           hint="connect once with ssh to check and record its key, or pass --accept-new-host-keys")
    if "Permission denied" in stderr:
        return DeviceError(f"{device.name}: login refused ({last})",
                           hint="check the user and that your key is in the device's ~/.ssh/authorized_keys")
    return DeviceError(f"{device.name}: cannot connect ({last})", hint="check the address, the port and that sshd runs there")


def dropped_error(device: Device, stderr: str) -> DeviceError:
    return DeviceError(f"{device.name}: the connection dropped during the run ({last_line(stderr, 200, 'closed, or stopped answering')})",
                       hint="the device rebooted, lost power or network; rerun to retry it (finished devices are skipped)")



def _read_out(stream, into: list[bytes], callback) -> None:
    for block in iter(lambda: stream.read1(1 << 16), b""):
        into.append(block)
        if callback:
            callback(block)


def _read_err(stream, into: list[str], callback) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        into.append(line)
        if callback:
            callback(line)


def _write(stream, blocks: Iterable[bytes]) -> None:
    try:
        for block in blocks:
            stream.write(block)
        stream.close()
    except (BrokenPipeError, OSError):
        pass  # the remote side ended first; its exit status says why
