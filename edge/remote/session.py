"""One device, from login to result: find (or install) edge there, send what it lacks, run edge.

Everything edge keeps on a device lives under ``~/.cache/edge``: ``bundles/`` (one folder
per bundle, updated file by file), ``wheels/`` and ``venv/`` (``--bootstrap``).

    >>> s = Session(SshTransport(device, control), progress=print)     # doctest: +SKIP
    >>> remote = s.push(Path("build/digits"))                           # only files whose sha256 differ
    >>> s.edge(["profile", remote, "-o", s.scratch("profile.json")])   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from edge import __version__
from edge.core.bundle import sha256_file
from edge.core.errors import DeviceError, last_line
from edge.remote import wheels
from edge.remote.devices import Device
from edge.remote.ssh import Transport

CACHE = ".cache/edge"
# Where edge is looked for when the device does not say: the venv --bootstrap makes, the venv the
# README's Raspberry Pi section makes, then the login PATH.
CANDIDATES = ("~/.cache/edge/venv/bin/edge", "~/edge/bin/edge", "~/.local/bin/edge", "edge")
_AGENT = (Path(__file__).with_name("agent.py")).read_text(encoding="utf-8")


class Session:
    """The steps of a remote job on one device; each raises DeviceError with the device's name."""

    def __init__(self, transport: Transport, device: Device, progress: Callable[[str], None], timeout_s: float) -> None:
        self.transport = transport
        self.device = device
        self.progress = progress
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s  # for the whole job, login to result
        self.info: dict = {}
        self.edge_path: str | None = None

    def left(self) -> float:
        """Seconds left of the device's timeout; none left is a failure."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeviceError(f"{self.device.name}: out of time ({self.timeout_s:.0f} s for the whole job)",
                              hint="raise the device's timeout (--timeout, or 'timeout' in the fleet file)")
        return left

    def agent(self, *args: str, stdin=None) -> dict:
        done = self.transport.run(["python3", "-c", _AGENT, *args], timeout=self.left(), stdin=stdin)
        if done.returncode == 127 or "python3: not found" in done.stderr or "python3: command not found" in done.stderr:
            raise DeviceError(f"{self.device.name}: python3 is not installed there", hint="install it (apt install python3 python3-venv)")
        if done.returncode != 0:
            raise DeviceError(f"{self.device.name}: {args[0]} failed there ({last_line(done.stderr)})")
        return json.loads(done.stdout.decode("utf-8"))

    def start(self, bootstrap: bool) -> str:
        """Log in, find a compatible edge (or install one with ``bootstrap``); return its path there."""
        self.progress("connecting")
        self.transport.connect(timeout=min(60.0, self.left()))
        candidates = [self.device.edge] if self.device.edge else list(CANDIDATES)
        self.info = self.agent("info", *candidates)
        found = self.info.get("edge")
        if found and found["version"] == __version__ and not bootstrap:
            self.edge_path = found["path"]
            return self.edge_path
        if not bootstrap:
            what = f"edge {found['version']} at {found['path']}" if found else "no edge"
            raise DeviceError(f"{self.device.name}: has {what}, this host runs edge {__version__}",
                              hint="pass --bootstrap to install this version in a venv there (from wheels sent by this host)")
        self.edge_path = self._bootstrap()
        return self.edge_path

    def _bootstrap(self) -> str:
        machine, python, libc = self.info["machine"], self.info["python"], self.info.get("libc") or ["", ""]
        self.progress(f"bootstrap: gathering wheels for {machine} Python {python} on this host")
        local = wheels.gather(machine, python, libc[1] if libc[0] == "glibc" else "")
        self.push_files(local.parent, [p.name for p in sorted(local.parent.glob("*.whl"))], f"{CACHE}/wheels")
        home = self.info["home"]
        venv = f"{home}/{CACHE}/venv"
        found_links = f"{home}/{CACHE}/wheels"
        self.progress("bootstrap: creating the venv and installing (no internet needed there)")
        steps = [["python3", "-m", "venv", venv],
                 [f"{venv}/bin/pip", "install", "--disable-pip-version-check", "--no-index", "--find-links", found_links,
                  f"edge-deploy[text]=={__version__}"],
                 # the same version number may hold newer code: always take the wheel just sent
                 [f"{venv}/bin/pip", "install", "--disable-pip-version-check", "--no-index", "--no-deps", "--force-reinstall",
                  f"{found_links}/{local.name}"]]
        for argv in steps:
            done = self.transport.run(argv, timeout=self.left())
            if done.returncode != 0:
                raise DeviceError(f"{self.device.name}: bootstrap failed at '{shlex.join(argv[:3])}' ({last_line(done.stderr)})",
                                  hint="python3-venv must be installed there (apt install python3-venv)")
        return f"{venv}/bin/edge"

    def push(self, path: Path) -> str:
        """Send a bundle (or a single model file) unless the device already holds it; return its path there."""
        path = path.resolve()
        if path.is_dir():
            names = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            # One folder per bundle content (its manifest holds every artifact's digest), so two bundles
            # of the same name do not overwrite each other there.
            manifest = path / "manifest.json"
            key = sha256_file(manifest)[:12] if manifest.is_file() else hashlib.sha256(str(path).encode()).hexdigest()[:12]
            folder = f"{CACHE}/bundles/{_safe(path.name)}-{key}"
            self.push_files(path, names, folder)
            return f"{self.info['home']}/{folder}"
        folder = f"{CACHE}/files/{sha256_file(path)[:12]}"
        self.push_files(path.parent, [path.name], folder)
        return f"{self.info['home']}/{folder}/{path.name}"

    def push_files(self, base: Path, names: list[str], folder: str) -> None:
        """Copy the files the device lacks or holds with another sha256 into ``~/folder``."""
        there = self.agent("digests", f"~/{folder}")
        local = {n: sha256_file(base / n) for n in names}
        missing = [n for n in names if there.get(n) != local[n]]
        size = sum((base / n).stat().st_size for n in missing)
        if not missing:
            self.progress(f"{folder.rsplit('/', 1)[-1]}: already there ({len(names)} files)")
            return
        self.progress(f"sending {len(missing)} of {len(names)} files ({size / 1e6:.1f} MB)")
        self.agent("receive", f"~/{folder}", stdin=_frames(base, missing, local))

    def edge(self, argv: list[str], on_stdout=None, on_stderr=None):
        """Run edge there with ``argv``; its progress lines go to ``on_stderr``."""
        return self.transport.run([self.edge_path, *argv], timeout=self.left(), on_stdout=on_stdout, on_stderr=on_stderr)

    def scratch(self, name: str) -> str:
        return f"{self.info['home']}/{CACHE}/results/{name}"

    def fetch(self, remote: str) -> bytes:
        done = self.transport.run(["cat", "--", remote], timeout=self.left())
        if done.returncode != 0:
            raise DeviceError(f"{self.device.name}: could not read {remote} there ({last_line(done.stderr)})")
        return done.stdout


def _frames(base: Path, names: list[str], digests: dict[str, str]) -> Iterator[bytes]:
    for name in names:
        path = base / name
        yield (json.dumps({"path": name, "size": path.stat().st_size, "sha256": digests[name]}) + "\n").encode()
        with path.open("rb") as f:
            yield from iter(lambda: f.read(1 << 20), b"")
    yield b'{"end": true}\n'


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:60] or "bundle"
