"""A real OpenSSH server for the tests: Debian's sshd on 127.0.0.1, with keys made per test.

    with Sshd(tmp_path) as server:          # a free port, its own host key and client key
        server.device_url                   # ssh://USER@127.0.0.1:PORT
        server.ssh_config                   # IdentityFile + UserKnownHostsFile for edge --ssh-config

It logs in as the user running the tests, with HOME set to a folder of the test so nothing
lands in the real home. Skipped (with the reason) where sshd is missing or the user has no shell.
"""

from __future__ import annotations

import getpass
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def require_sshd() -> None:
    if not os.path.exists(SSHD):
        message = "Debian's openssh-server is not installed (make test installs it as root)"
        if os.environ.get("EDGE_REQUIRE_SSHD") == "1":
            pytest.fail(message)
        pytest.skip(message)
    shell = pwd.getpwuid(os.getuid()).pw_shell
    if shell.endswith(("nologin", "false")):
        pytest.skip(f"this user's login shell is {shell}: sshd cannot run commands as it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class Sshd:
    """sshd -D on a loopback port; ``force_command`` wraps every command (to simulate a device)."""

    def __init__(self, folder: Path, force_command: str | None = None, home: Path | None = None,
                 client_key: Path | None = None, known_hosts: Path | None = None, path: str | None = None) -> None:
        require_sshd()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = getpass.getuser()
        self.home = home or folder / "home"
        self.home.mkdir(exist_ok=True)
        self.host_key = keygen(folder / "host_key")
        self.client_key = client_key or keygen(folder / "client_key")
        (folder / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        os.chmod(folder / "authorized_keys", 0o600)
        lines = [f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
                 f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
                 "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UsePAM no",
                 "StrictModes no", f"PidFile {folder / 'sshd.pid'}", "LogLevel ERROR"]
        # one SetEnv line for all: sshd keeps only the first SetEnv directive it reads
        lines.append(f"SetEnv HOME={self.home}" + (f" PATH={path}" if path else ""))
        if force_command:
            lines.append(f"ForceCommand {force_command}")
        (folder / "sshd_config").write_text("\n".join(lines) + "\n")
        self.known_hosts = known_hosts or folder / "known_hosts"
        public = Path(f"{self.host_key}.pub").read_text().split()
        with self.known_hosts.open("a") as f:
            f.write(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        self.ssh_config = folder / "ssh_config"
        self.ssh_config.write_text(f"Host *\n  IdentityFile {self.client_key}\n  UserKnownHostsFile {self.known_hosts}\n"
                                   "  IdentitiesOnly yes\n")
        self.proc: subprocess.Popen | None = None

    @property
    def device_url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def start(self) -> "Sshd":
        if os.getuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation folder
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=(self.folder / "sshd.log").open("wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not listen within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def __enter__(self) -> "Sshd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
