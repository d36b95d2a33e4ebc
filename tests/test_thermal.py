"""Thermal state on recorded sysfs trees and recorded vcgencmd output (tests/data/energy/SOURCES.md).

vcgencmd is a real executable on PATH that prints recorded lines: it reads them from a folder the
test rewrites between the two snapshots, as the firmware's answer changes during a run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edge.device import thermal
from edge.device.thermal import compare, decode_throttled, snapshot

from conftest import DATA

ENERGY = DATA / "energy"


def _line(recording: str, prefix: str) -> str:
    """The one recorded line starting with ``prefix`` (recordings hold several commands' output)."""
    return next(line for line in (ENERGY / recording).read_text().splitlines() if line.startswith(prefix))


@pytest.fixture
def vcgencmd(tmp_path, monkeypatch):
    """Set what ``vcgencmd <command>`` prints: ``vcgencmd("get_throttled", "throttled=0x0")``."""
    answers = tmp_path / "vcgencmd-answers"
    answers.mkdir()
    script = tmp_path / "bin/vcgencmd"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\n[ -f "{answers}/$1" ] && exec cat "{answers}/$1"\n'
                      "echo 'error=1 error_msg=\"Command not registered\"'\nexit 255\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")

    def answer(command: str, text: str) -> None:
        (answers / command).write_text(text + "\n")
    return answer


@pytest.fixture
def no_vcgencmd(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def _rpi3_tree(tmp_path: Path) -> Path:
    root = Path(shutil.copytree(ENERGY / "rpi3-linux-1918", tmp_path / "rpi3"))
    # The issue published the zone's real path; the kernel links /sys/class/thermal to it, so do we.
    (root / "sys/class/thermal").mkdir(parents=True)
    (root / "sys/class/thermal/thermal_zone0").symlink_to(root / "sys/devices/virtual/thermal/thermal_zone0")
    return root


def test_decode_throttled_bits():
    assert decode_throttled(0x0) == []
    assert decode_throttled(0x50000) == ["under-voltage has occurred since boot", "throttled has occurred since boot"]
    assert decode_throttled(0x50005) == ["under-voltage now", "throttled now",
                                         "under-voltage has occurred since boot", "throttled has occurred since boot"]
    assert decode_throttled(0x80008) == ["soft temperature limit now", "soft temperature limit has occurred since boot"]


def test_rpi3_sysfs_without_vcgencmd(tmp_path, no_vcgencmd):
    state = snapshot(_rpi3_tree(tmp_path))
    assert state.temp_c == pytest.approx(42.932)
    assert state.freq_mhz == [1200.0] and state.governor == "ondemand"
    assert state.throttled is None and state.throttled_flags == []
    assert [u.split(":")[0] for u in state.unavailable] == ["throttled"]
    assert "vcgencmd is not on PATH" in state.unavailable[0]
    assert json.loads(json.dumps(state.to_dict()))["freq_mhz"] == [1200.0]


def test_nothing_readable_says_why(tmp_path, no_vcgencmd):
    state = snapshot(tmp_path)
    assert (state.temp_c, state.freq_mhz, state.governor, state.throttled) == (None, None, None, None)
    assert [u.split(":")[0] for u in state.unavailable] == ["temperature", "frequency", "governor", "throttled"]
    assert compare(state, state) == []


def test_vcgencmd_temperature_when_no_thermal_zone(tmp_path, vcgencmd):
    vcgencmd("measure_temp", (ENERGY / "rpi3bplus-gopilgc-stress/vcgencmd/measure_temp.txt").read_text().strip())
    vcgencmd("get_throttled", (ENERGY / "rpi3bplus-gopilgc-stress/vcgencmd/get_throttled.txt").read_text().strip())
    state = snapshot(tmp_path)
    assert state.temp_c == 67.7 and state.throttled == "0x80008"
    assert state.throttled_flags[0] == "soft temperature limit now"


def test_soft_temperature_limit_begins_mid_run(tmp_path, vcgencmd):
    root = _rpi3_tree(tmp_path)
    vcgencmd("get_throttled", (ENERGY / "rpi3bplus-gopilgc-oakd-idle/vcgencmd/get_throttled.txt").read_text().strip())
    before = thermal.snapshot(root)
    assert before.throttled == "0x0" and before.unavailable == []
    # during the run: the recorded loaded state of the same board, and a hotter, slower SoC
    vcgencmd("get_throttled", (ENERGY / "rpi3bplus-gopilgc-oakd-load/vcgencmd/get_throttled.txt").read_text().strip())
    (root / "sys/devices/virtual/thermal/thermal_zone0/temp").write_text("65500\n")
    (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").write_text("600000\n")
    after = thermal.snapshot(root)
    flags = thermal.compare(before, after)
    assert "throttling began during the run: soft temperature limit active" in flags
    assert "temperature rose by 22.6 °C (42.9 -> 65.5 °C)" in flags
    assert "CPU frequency dropped from 1200 to 600 MHz (fastest core)" in flags


def test_under_voltage_now_after_it_had_occurred(tmp_path, vcgencmd):
    # raspberrypi/firmware#615: two runs, the sticky bits were set before, the "now" bits came on
    vcgencmd("get_throttled", _line("rpi3-firmware-615/vcgencmd/run1.measure_temp+get_throttled+measure_temp.txt",
                                    "throttled="))
    before = snapshot(_rpi3_tree(tmp_path))
    vcgencmd("get_throttled", _line("rpi3-firmware-615/vcgencmd/run2.measure_temp+get_throttled+measure_temp.txt",
                                    "throttled="))
    after = snapshot(tmp_path / "rpi3")
    assert (before.throttled, after.throttled) == ("0x50000", "0x50005")
    assert compare(before, after) == ["throttling began during the run: under-voltage active",
                                      "throttling began during the run: throttled active"]


def test_throttling_that_came_and_went(tmp_path, vcgencmd):
    vcgencmd("get_throttled", (ENERGY / "rpi5-geerling/vcgencmd/get_throttled.txt").read_text().strip())
    before = snapshot(tmp_path)
    vcgencmd("get_throttled", _line("rpi3-firmware-615/vcgencmd/run1.measure_temp+get_throttled+measure_temp.txt",
                                    "throttled="))
    flags = compare(before, snapshot(tmp_path))
    assert flags == ["throttling occurred during the run and cleared: under-voltage",
                     "throttling occurred during the run and cleared: throttled"]


def test_unchanged_state_has_no_flags(tmp_path, vcgencmd):
    vcgencmd("get_throttled", (ENERGY / "rpi3bplus-gopilgc-oakd-idle/vcgencmd/get_throttled.txt").read_text().strip())
    root = _rpi3_tree(tmp_path)
    assert compare(snapshot(root), snapshot(root)) == []
