"""The hwmon meter (and the shared sampler) on the recorded INA219 tree (tests/data/energy/SOURCES.md).

The recording is a UPS board's INA219 (networkupstools/nut#2960): power1_input 176000 uW,
in1_input 4228 mV, curr1_input -40 mA, and no ``name`` file. Values written mid-run are the
test's own, as in the RAPL tests: the meter must follow whatever the files say.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from edge.device.meters import MeterError, find, meter
from edge.device.meters.hwmon import HwmonMeter, read_w, sensors

from conftest import DATA, detect_unprivileged, readonly_copy

ENERGY = DATA / "energy"
INA219 = "sys/class/hwmon/hwmon2"


def _tree(tmp_path: Path, name: str = "rpi-ina219-ups-nut2960") -> Path:
    return Path(shutil.copytree(ENERGY / name, tmp_path / name))


def test_ina219_power_input_without_a_name_file(tmp_path):
    root = _tree(tmp_path)
    [sensor] = sensors(root)
    assert sensor.name is None and sensor.channel == "power1_input"
    assert sensor.power_w() == pytest.approx(0.176)
    found = HwmonMeter(root).detect()
    assert found.available and "hwmon2 (no name file)" in found.scope
    assert "not necessarily the whole device" in found.scope


def test_bus_voltage_times_current_when_no_power_channel(tmp_path):
    root = _tree(tmp_path)
    (root / INA219 / "power1_input").unlink()
    [sensor] = sensors(root)
    # in0 is the shunt voltage (-4 mV): the bus voltage is in1; the current's sign is the shunt's wiring
    assert sensor.channel == "in1_input x curr1_input"
    assert sensor.power_w() == pytest.approx(4.228 * 0.040)


def test_labelled_channels_pair_by_label(tmp_path):
    root = _tree(tmp_path)
    hwmon = root / INA219
    (hwmon / "power1_input").unlink()
    (hwmon / "shunt_resistor").unlink()  # no longer recognisable as the ina2xx layout
    assert sensors(root) == []
    for name, label in (("in0_label", "shunt"), ("in1_label", "VIN"), ("curr1_label", "VIN")):
        (hwmon / name).write_text(label + "\n")
    assert sensors(root)[0].channel == "in1_input x curr1_input"


def test_the_jetson_ina3221_is_left_to_its_own_meter(tmp_path):
    root = _tree(tmp_path)
    (root / INA219 / "name").write_text("ina3221\n")
    assert "no hwmon power sensor" in HwmonMeter(root).detect().reason


def test_samples_and_integrates_a_step(tmp_path):
    root = _tree(tmp_path)
    hwmon = meter("hwmon", root)
    hwmon.start()
    time.sleep(0.5)
    switched = time.monotonic()
    (root / INA219 / "power1_input").write_text("2500000\n")  # the test's value: 2.5 W
    time.sleep(0.5)
    stopped = time.monotonic()
    reading = hwmon.stop()
    assert 4 <= reading.sample_rate_hz <= 10 and reading.samples >= 6
    low = reading.duration_s - (stopped - switched)
    expected = 0.176 * low + 2.5 * (stopped - switched)
    assert reading.energy_j == pytest.approx(expected, abs=0.2 * (2.5 - 0.176))
    assert reading.confidence == "measured" and "hwmon2" in reading.method


def test_constant_power_integrates_exactly(tmp_path):
    hwmon = HwmonMeter(_tree(tmp_path))
    hwmon.start()
    time.sleep(0.3)
    reading = hwmon.stop()
    assert reading.energy_j == pytest.approx(0.176 * reading.duration_s, rel=1e-6)


def test_a_sensor_that_vanishes_mid_run_fails_loudly(tmp_path):
    root = _tree(tmp_path)
    hwmon = HwmonMeter(root)
    hwmon.start()
    (root / INA219 / "power1_input").unlink()
    time.sleep(0.8)
    with pytest.raises(MeterError, match="stopped answering.*FileNotFoundError"):
        hwmon.stop()


def test_a_sensor_that_does_not_answer_at_start(tmp_path):
    root = _tree(tmp_path)
    hwmon = HwmonMeter(root)
    (root / INA219 / "power1_input").write_text("not a number\n")
    with pytest.raises(MeterError, match="did not answer: ValueError"):
        hwmon.start()


def test_read_w_units():
    assert read_w(ENERGY / "rpi-ina219-ups-nut2960" / INA219 / "power1_input") == pytest.approx(0.176)


def test_no_hwmon_sensor_says_why(tmp_path):
    found, reasons = find(["hwmon"], tmp_path)
    assert found is None and "no hwmon power sensor" in reasons["hwmon"]


def test_unreadable_sensor_is_unavailable_not_zero():
    with tempfile.TemporaryDirectory(prefix="edge-hwmon-") as tmp:
        root = readonly_copy("rpi-ina219-ups-nut2960", Path(tmp))
        (root / INA219 / "power1_input").chmod(0o200)
        reason = detect_unprivileged("hwmon", root)
        assert reason.startswith("permission: cannot read power1_input"), reason
