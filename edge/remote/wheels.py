"""Wheels for a device, gathered on the host so the device needs no internet (``--bootstrap``).

edge's own wheel is built from this checkout when edge runs from one (so the device runs the
same code as the host), else downloaded at the host's version; its dependencies are fetched by
the host's pip for the device's machine, Python and glibc. A dependency with no wheel for the
device (say, a 32-bit board) fails here with pip's reason, before anything is sent.

    >>> gather("aarch64", "3.11", "2.36")  # doctest: +SKIP
    PosixPath('~/.cache/edge/wheels/aarch64-cp311/edge_deploy-0.1.0-py3-none-any.whl')
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from edge import __version__
from edge.core.errors import DeviceError, DISTRIBUTION

EXTRAS = "text"  # tokenizers and jinja2: --text and language models work on the device


def platforms(machine: str, glibc: str) -> list[str]:
    """pip --platform tags a device with this machine and glibc accepts, newest first.

    >>> platforms("aarch64", "2.28")[:2]
    ['manylinux_2_28_aarch64', 'manylinux_2_27_aarch64']
    """
    if machine not in ("aarch64", "x86_64"):
        raise DeviceError(f"no wheels of onnxruntime and LiteRT exist for {machine} devices",
                          hint="edge runs on 64-bit devices: a 64-bit OS on the board (aarch64) or x86-64")
    major, _, minor = glibc.partition(".")
    newest = int(minor) if major == "2" and minor.isdigit() else 17
    tags = [f"manylinux_2_{n}_{machine}" for n in range(newest, 16, -1)]
    return tags + [f"manylinux2014_{machine}", f"linux_{machine}"]


def gather(machine: str, python: str, glibc: str) -> Path:
    """Fill the host's wheel cache for this device kind; return the path of edge's own wheel."""
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge" / "wheels" / f"{machine}-cp{python.replace('.', '')}"
    folder.mkdir(parents=True, exist_ok=True)
    own = _own_wheel(folder)
    tags = [arg for tag in platforms(machine, glibc) for arg in ("--platform", tag)]
    abi = "cp" + python.replace(".", "")
    _pip(["download", "--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--abi", abi,
          *tags, "-d", str(folder), f"{own}[{EXTRAS}]"],
         f"the host could not gather wheels for a {machine} device with Python {python}")
    return own


def _own_wheel(folder: Path) -> Path:
    source = Path(__file__).resolve().parents[2]
    for stale in folder.glob("edge_deploy-*.whl"):
        stale.unlink()
    if (source / "pyproject.toml").is_file():
        with tempfile.TemporaryDirectory() as scratch:
            _pip(["wheel", "--no-deps", "--no-build-isolation", "-w", scratch, str(source)], "could not build edge's wheel from "
                 f"{source}")
            built = next(Path(scratch).glob("edge_deploy-*.whl"))
            return Path(os.replace(built, folder / built.name) or folder / built.name)
    _pip(["download", "--no-deps", "-d", str(folder), f"{DISTRIBUTION}=={__version__}"], "could not download edge's wheel")
    return next(folder.glob("edge_deploy-*.whl"))


def _pip(args: list[str], failure: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = next((line for line in lines if "ERROR" in line), lines[-1] if lines else "pip failed")
        raise DeviceError(f"{failure}: {reason.strip()[:300]}",
                          hint="every dependency needs a wheel for the device; the line above names the one missing")
