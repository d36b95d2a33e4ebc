"""The battery meter on recorded power_supply trees (tests/data/energy/SOURCES.md).

Recorded: a Dell laptop and a Chromebook discharging (uevent only, positive current in uA), the
Chromebook charging, a ThinkPad discharging (attribute files, power_now), a Xiaomi Mi 6 ``bms``
gauge (negative current while discharging, no status line). What a test adds to a tree is
marked where it happens.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from edge.device.meters import MeterError, find, meter
from edge.device.meters.power_supply import ON_MAINS, PowerSupplyMeter, batteries, properties, read_w

from conftest import DATA, step_energy

ENERGY = DATA / "energy"
SUPPLIES = "sys/class/power_supply"


def _tree(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(ENERGY / name, tmp_path / name))


def _charging(root: Path) -> None:
    """The Chromebook's recorded charging uevent (its last, cut line is the serial number)."""
    recorded = ENERGY / "chromeos-brunch117-charging" / SUPPLIES / "BATC/uevent.TRUNCATED"
    shutil.copy(recorded, root / SUPPLIES / "BATC/uevent")


def test_dell_voltage_times_current_from_the_uevent(tmp_path):
    root = _tree(tmp_path, "laptop-dell-cnx31")
    [bat] = batteries(root)
    assert bat.props["status"] == "Discharging" and "type" not in bat.props
    found = PowerSupplyMeter(root).detect()
    assert found.available and "BAT0: voltage_now x |current_now|" in found.scope
    assert read_w(bat.path) == pytest.approx(12.6 * 0.756)


def test_thinkpad_power_now_from_the_attribute_files(tmp_path):
    root = _tree(tmp_path, "laptop-thinkpad-xmobar315")
    assert properties(root / SUPPLIES / "BAT0")["type"] == "Battery"
    found = PowerSupplyMeter(root).detect()
    assert found.available and "BAT0: power_now" in found.scope
    assert read_w(root / SUPPLIES / "BAT0") == pytest.approx(27.758)


def test_charging_is_unavailable(tmp_path):
    root = _tree(tmp_path, "chromeos-brunch117-discharging")
    _charging(root)
    found, reasons = find(["power-supply"], root)
    assert found is None and reasons["power-supply"] == f"{ON_MAINS} (status: BATC Charging)"


def test_android_negative_current_uses_its_magnitude(tmp_path):
    root = _tree(tmp_path, "android-xiaomi-mi6-sagit")
    assert "no battery reports a status" in PowerSupplyMeter(root).detect().reason
    # Android keeps the status in the "battery" supply: ADDED by this test, as the source says
    # the bms values were read while discharging; it carries no current, so bms is measured
    battery = root / SUPPLIES / "battery"
    battery.mkdir()
    (battery / "type").write_text("Battery\n")
    (battery / "status").write_text("Discharging\n")
    found = PowerSupplyMeter(root).detect()
    assert found.available and "bms: voltage_now x |current_now|, negative while discharging" in found.scope
    assert read_w(root / SUPPLIES / "bms") == pytest.approx(4.13744 * 1.202147)


def test_milli_units_are_refused_not_rescaled(tmp_path):
    # CONSTRUCTED: the Dell's values divided by 1000, as a driver reporting mV and mA would show
    # them (SOURCES.md: no raw mA/mV uevent was found, only prose about a Huawei tablet)
    root = _tree(tmp_path, "laptop-dell-cnx31")
    uevent = root / SUPPLIES / "BAT0/uevent"
    uevent.write_text(uevent.read_text().replace("VOLTAGE_NOW=12600000", "VOLTAGE_NOW=12600")
                      .replace("CURRENT_NOW=756000", "CURRENT_NOW=756"))
    reason = PowerSupplyMeter(root).detect().reason
    assert "voltage_now=12600 is below 1 V read as uV: the driver reports mV" in reason
    (root / SUPPLIES / "BAT0/voltage_now").write_text("12600000\n")  # volts fixed, current still in mA
    assert "0.009526 W while discharging is implausible" in PowerSupplyMeter(root).detect().reason


def test_samples_while_discharging(tmp_path):
    root = _tree(tmp_path, "chromeos-brunch117-discharging")
    battery = meter("power-supply", root)
    assert battery.detect().available
    battery.start()
    time.sleep(0.4)
    switched = time.monotonic()
    uevent = root / SUPPLIES / "BATC/uevent"  # the test's value: the current doubles mid-run
    uevent.write_text(uevent.read_text().replace("CURRENT_NOW=1560000", "CURRENT_NOW=3120000"))
    time.sleep(0.4)
    stopped = time.monotonic()
    reading = battery.stop()
    low, high = 3.942 * 1.56, 3.942 * 3.12
    expected = step_energy(reading.duration_s, switched, stopped, low, high)
    assert reading.energy_j == pytest.approx(expected, abs=0.2 * (high - low))
    assert reading.confidence == "measured" and "BATC voltage_now x current_now" in reading.method


def test_plugged_in_during_the_run_is_refused(tmp_path):
    root = _tree(tmp_path, "chromeos-brunch117-discharging")
    battery = PowerSupplyMeter(root)
    assert battery.detect().available
    battery.start()
    _charging(root)  # the same Chromebook's recorded charging state
    time.sleep(0.2)
    with pytest.raises(MeterError, match="status changed during the run.*BATC Discharging -> BATC Charging"):
        battery.stop()


def test_no_battery(tmp_path):
    assert PowerSupplyMeter(tmp_path).detect().reason == "no battery under /sys/class/power_supply"
