"""Detection from real recorded /proc and /sys trees (see data/machines/SOURCES.md)."""

from __future__ import annotations

import platform
import shutil

import pytest

from edge.device.detect import detect, read_facts
from edge.core.errors import UnknownTargetError

from conftest import DATA

MACHINES = DATA / "machines"


@pytest.mark.parametrize(
    "machine, target, evidence",
    [
        ("rpi4", "rpi4", "device-tree model 'Raspberry Pi 4 Model B Rev 1.1'"),
        ("rpi5", "rpi5", "CPU part 0xd0b"),
        ("n100", "x86-minipc", "CPU model 'Intel(R) N100'"),
        ("android-arm64", "android-arm64", "big.LITTLE"),
    ],
)
def test_recorded_machines(machine, target, evidence):
    found = detect(MACHINES / machine)
    assert found.target == target
    assert found.exact and found.note is None
    assert any(evidence in r for r in found.reasons), found.reasons


def test_facts_from_a_pi5():
    facts = read_facts(MACHINES / "rpi5")
    assert facts.arch == "aarch64"
    assert facts.board == "Raspberry Pi 5 Model B Rev 1.0"  # NUL stripped
    assert [c.part for c in facts.cores] == ["0xd0b"] * 4
    assert facts.memory_mb == 8252368 // 1024
    assert "asimddp" in facts.flags and not facts.heterogeneous


def test_phone_big_cores_come_from_sysfs():
    facts = read_facts(MACHINES / "android-arm64")
    assert facts.heterogeneous
    assert len(facts.cores) == 9
    assert facts.big_cores() == [8]  # the Cortex-X3 at 2.9 GHz


def test_unknown_board_falls_back_to_generic_with_a_note(tmp_path):
    # A Pi 5 tree without its device-tree model: an A76 board that is not a Pi.
    shutil.copytree(MACHINES / "rpi5", tmp_path / "board")
    (tmp_path / "board/proc/device-tree/model").write_bytes(b"Radxa ROCK 5 Model B\0")
    found = detect(tmp_path / "board")
    assert found.target == "arm64-generic" and not found.exact
    assert "rpi5: device-tree model 'Radxa ROCK 5 Model B' is not" in found.note


def test_x86_without_a_known_class_is_generic(tmp_path):
    text = (MACHINES / "n100/proc/cpuinfo").read_text().replace("Intel(R) N100", "Intel(R) Core(TM) i5-12400")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(text)
    found = detect(tmp_path)
    assert found.target == "x86-64-generic"
    assert "x86-minipc: CPU model" in found.note


def test_empty_tree_has_no_target(tmp_path):
    with pytest.raises(UnknownTargetError, match="no target for this machine"):
        detect(tmp_path)


def test_this_machine_detects_as_its_own_architecture():
    found = detect("/")
    assert found.facts.arch == platform.machine()
    assert found.reasons[0] == f"architecture {platform.machine()}"


def test_cli_detect_with_root(edge_cli):
    result = edge_cli("detect", "--root", MACHINES / "rpi4")
    assert result.code == 0, result
    assert "target: rpi4" in result.stdout
    result = edge_cli("detect", "--root", MACHINES / "android-arm64", "--json")
    assert '"target": "android-arm64"' in result.stdout and '"heterogeneous": true' in result.stdout
