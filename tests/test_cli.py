"""The CLI: listings, one-line errors with hints and exit codes, tracebacks only with --debug."""

from __future__ import annotations

import subprocess
import sys

from conftest import DIGITS


def test_targets_list_and_show(edge_cli):
    result = edge_cli("targets", "list")
    assert result.code == 0
    for name in ("rpi4", "rpi5", "rpi-zero2w", "android-arm64", "x86-minipc", "x86-avx512", "jetson-orin-nano"):
        assert name in result.stdout
    shown = edge_cli("targets", "show", "android-arm64")
    text = " ".join(shown.stdout.split())  # the table wraps at the terminal width
    assert shown.code == 0 and "affinity big" in text and "cortex-a510" in text


def test_unknown_target_in_show(edge_cli):
    result = edge_cli("targets", "show", "rpi-zero")
    assert result.code == 5 and "did you mean 'rpi-zero2w'" in result.stderr


def test_bad_dim(edge_cli, tmp_path):
    result = edge_cli("export", DIGITS, "-t", "rpi4", "-o", tmp_path / "b", "--dim", "sequence")
    assert result.code == 2 and "bad --dim 'sequence'" in result.stderr


def test_errors_are_one_line_without_traceback_unless_debug(tmp_path):
    cmd = [sys.executable, "-m", "edge", "export", str(tmp_path / "x.onnx"), "-t", "rpi4", "-o", str(tmp_path / "b")]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 3
    lines = plain.stderr.strip().splitlines()
    assert lines[-2].startswith("error: no such file") and lines[-1].startswith("hint:")
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([cmd[0], "-m", "edge", "--debug", *cmd[3:]], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "InputNotFoundError" in debug.stderr


def test_inspect_of_a_folder_that_is_not_a_bundle(edge_cli, tmp_path):
    result = edge_cli("inspect", tmp_path)
    assert result.code == 4 and "has no manifest.json" in result.stderr
