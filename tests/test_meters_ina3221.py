"""The Jetson INA3221 meter: channel pairing, labels and the VDD_IN rule.

No complete recording exists (tests/data/energy/SOURCES.md: the only sysfs excerpt, alumet#212
on an AGX Orin, was cut before any label or value). The directory layout, ``name`` and
``uevent`` files below are that recording's; every label, voltage and current file is
CONSTRUCTED by this test. Labels follow the Orin NX channel mapping quoted from ARK Electronics'
docs (in1 = VDD_IN, in2 = VDD_CPU_GPU_CV, in3 = VDD_SOC); VDD_IN's 5160 mV / 1010 mA and
5040 mV / 5600 mA are that doc's idle and 40 W rows; the other rails' values are made up. So this
tests the pairing and label logic, not any board's real numbers.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from edge.device.meters import find, meter
from edge.device.meters.ina3221 import Ina3221Meter, rails, read_w

from conftest import DATA, step_energy

HWMON = "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon2"


def _construct(tmp_path: Path, channels: dict[str, str]) -> Path:
    """The recorded alumet#212 layout, plus constructed channel files ``{filename: value}``."""
    root = Path(shutil.copytree(DATA / "energy/jetson-agx-orin-alumet212", tmp_path / "jetson"))
    for name, value in channels.items():
        (root / HWMON / name).write_text(f"{value}\n")
    return root


ORIN_NX = {
    "in1_label": "VDD_IN", "in1_input": 5160, "curr1_input": 1010,
    "in2_label": "VDD_CPU_GPU_CV", "in2_input": 5136, "curr2_input": 180,
    "in3_label": "VDD_SOC", "in3_input": 5152, "curr3_input": 240,
    # the driver's shunt voltages (uV) and their sum: never paired with a current
    "in4_input": 20200, "in7_label": "sum of shunt voltages", "in7_input": 28600, "curr4_input": 1430,
}


def test_vdd_in_alone_is_the_module_input(tmp_path):
    root = _construct(tmp_path, ORIN_NX)
    assert [r.label for r in rails(root)] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    ina = Ina3221Meter(root)
    found = ina.detect()
    assert found.available and "VDD_IN on 1-0041" in found.scope and "VDD_SOC" not in found.reason
    assert read_w(*(f for r in rails(root)[:1] for f in (r.volts, r.amps))) == pytest.approx(5.160 * 1.010)


def test_sum_of_rails_without_vdd_in_skips_nc_and_the_sum_channel(tmp_path):
    root = _construct(tmp_path, {**ORIN_NX, "in1_label": "NC"})
    ina = Ina3221Meter(root)
    found = ina.detect()
    assert found.reason.startswith("INA3221 VDD_CPU_GPU_CV, VDD_SOC at")
    assert "sum of the INA3221 rails VDD_CPU_GPU_CV, VDD_SOC" in found.scope
    ina.start()
    time.sleep(0.3)
    reading = ina.stop()
    assert reading.average_w == pytest.approx(5.136 * 0.180 + 5.152 * 0.240, rel=1e-6)


def test_disabled_and_unlabelled_channels(tmp_path):
    root = _construct(tmp_path, {**ORIN_NX, "in3_enable": 0})
    (root / HWMON / "in2_label").unlink()
    (root / HWMON / "in1_label").write_text("VDD_GPU_SOC\n")
    assert [r.label for r in rails(root)] == ["VDD_GPU_SOC", "1-0041 channel 2"]


def test_samples_vdd_in_as_the_load_changes(tmp_path):
    root = _construct(tmp_path, ORIN_NX)
    ina = meter("ina3221", root)
    ina.start()
    time.sleep(0.45)
    switched = time.monotonic()
    (root / HWMON / "in1_input").write_text("5040\n")
    (root / HWMON / "curr1_input").write_text("5600\n")
    time.sleep(0.45)
    stopped = time.monotonic()
    reading = ina.stop()
    expected = step_energy(reading.duration_s, switched, stopped, 5.160 * 1.010, 5.040 * 5.600)
    idle, load = 5.160 * 1.010, 5.040 * 5.600
    assert reading.energy_j == pytest.approx(expected, abs=0.2 * (load - idle))
    assert "VDD_IN" in reading.method and "VDD_CPU_GPU_CV" not in reading.method


def test_no_channel_values_is_unavailable(tmp_path):
    # the recording as published: layout only, no in*/curr* files
    root = Path(shutil.copytree(DATA / "energy/jetson-agx-orin-alumet212", tmp_path / "jetson"))
    found, reasons = find(["ina3221"], root)
    assert found is None and "no INA3221 channel" in reasons["ina3221"]


def test_old_iio_driver_is_named(tmp_path):
    (tmp_path / "sys/bus/i2c/drivers/ina3221x/1-0040").mkdir(parents=True)
    assert "ina3221x (iio) driver" in Ina3221Meter(tmp_path).detect().reason
