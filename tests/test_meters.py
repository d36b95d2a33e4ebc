"""Energy meters on recorded sysfs trees and recorded vcgencmd output (tests/data/energy/SOURCES.md)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from edge.device.meters import MeterError, find, meter
from edge.device.meters.rapl import RaplMeter, delta_uj, zones
from edge.device.meters._sampler import Sampler, integrate
from edge.device.meters.rpi5_pmic import power_w, rails

from conftest import DATA, detect_unprivileged, readonly_copy

ENERGY = DATA / "energy"


def _tree(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(ENERGY / name, tmp_path / name))


def _set(root: Path, zone: str, value: int) -> None:
    (root / "sys/class/powercap" / zone / "energy_uj").write_text(f"{value}\n")


def test_rapl_reads_the_package_not_its_subzones(tmp_path):
    root = _tree(tmp_path, "x86-rapl-mangohud1776")
    found = zones(root)
    assert [z.name for z in found] == ["package-0"] and found[0].max_range_uj == 262143328850
    rapl = RaplMeter(root)
    assert rapl.detect().available and "package" in rapl.detect().scope
    start = found[0].energy_uj()
    rapl.start()
    _set(root, "intel-rapl:0", start + 2_500_000)
    _set(root, "intel-rapl:0:0", 10**9)  # core: inside the package, must not be added
    reading = rapl.stop()
    assert reading.energy_j == pytest.approx(2.5)
    assert reading.sample_rate_hz is None and reading.confidence == "measured"


def test_rapl_wraps_around(tmp_path):
    root = _tree(tmp_path, "x86-rapl-mangohud1776")
    max_range = zones(root)[0].max_range_uj
    _set(root, "intel-rapl:0", max_range - 1_000_000)
    rapl = RaplMeter(root)
    rapl.start()
    _set(root, "intel-rapl:0", 500_000)  # the counter passed max_energy_range_uj and restarted
    assert rapl.stop().energy_j == pytest.approx(1.5)
    assert delta_uj(10, 30, 100) == 20 and delta_uj(90, 5, 100) == 15


def test_rapl_prefers_psys_over_packages(tmp_path):
    root = _tree(tmp_path, "x86-rapl-powerstat15-psys")
    for zone in ("intel-rapl:0", "intel-rapl:1"):  # this recording published no energy_uj values
        _set(root, zone, 1000)
    assert [z.name for z in zones(root)] == ["psys"]
    assert "platform" in RaplMeter(root).detect().scope


def test_rapl_nested_sysfs_layout(tmp_path):
    root = _tree(tmp_path, "x86-rapl-haswell-i7-4770S-thermald45")
    # The recording shows only the dram subzone under the legacy nested path: no package zone, nothing to read.
    assert zones(root) == []
    # Its package zone, whose files the post did not show, completed by hand: found by the nested path, subzone left out.
    package = root / "sys/class/powercap/intel-rapl/intel-rapl:0"
    (package / "name").write_text("package-0\n")
    (package / "energy_uj").write_text("1000\n")
    (found,) = zones(root)
    assert found.name == "package-0" and found.path == package and found.path.parent.name == "intel-rapl"


def test_rapl_without_permission_is_unavailable_not_zero():
    import tempfile

    # The kernel makes energy_uj 0400 root: copy the recorded tree where others may walk, but not read it.
    with tempfile.TemporaryDirectory(prefix="edge-rapl-") as tmp:
        root = readonly_copy("x86-rapl-mangohud1776", Path(tmp))
        # 0400 root in the kernel; 0000 here, so that no unprivileged user (the owner included) may read it
        (root / "sys/class/powercap/intel-rapl:0/energy_uj").chmod(0o000)
        reason = detect_unprivileged("rapl", root)
        assert reason.startswith("permission: RAPL energy_uj is readable by root only"), reason


def test_no_meter_here_says_why(tmp_path):
    found, reasons = find(["rapl", "rpi5-pmic", "ina9999"], tmp_path)
    assert found is None
    assert "no RAPL zones" in reasons["rapl"] and "no meter of that name" in reasons["ina9999"]


def test_pmic_rails_pair_by_name():
    text = (ENERGY / "rpi5-zeus-4busycores/vcgencmd/pmic_read_adc.txt").read_text()
    found = rails(text)
    assert len(found) == 12 and "EXT5V" not in found and "BATT" not in found
    assert found["VDD_CORE"] == (0.861733, 6.22421)
    idle = power_w((ENERGY / "rpi5-bakerkj-haos-idle/vcgencmd/pmic_read_adc.txt").read_text())
    assert 0 < idle < power_w(text)


def test_integrate_holds_edges():
    assert integrate([(1.0, 2.0), (2.0, 4.0)], 0.0, 3.0) == pytest.approx(2 * 1 + 3 * 1 + 4 * 1)


def test_sampler_child_that_cannot_start_says_why():
    with pytest.raises(MeterError, match="gave no sample: ModuleNotFoundError"):
        Sampler("edge.device.meters.no_such_meter:read_w", []).start()


def test_short_run_still_has_both_edges(tmp_path):
    power = tmp_path / "power1_input"
    power.write_text("2000000\n")
    sampler = Sampler("edge.device.meters.hwmon:read_w", [power])
    sampler.start()
    reading = sampler.stop().reading("test", "test")  # far shorter than one 0.15 s interval
    assert reading.energy_j == pytest.approx(2.0 * reading.duration_s) and reading.samples == 2
    assert reading.sample_rate_hz == pytest.approx(1 / 0.15)


@pytest.fixture
def fake_vcgencmd(tmp_path, monkeypatch):
    """A vcgencmd on PATH that prints a recorded Pi 5 output, as the firmware tool would."""
    recorded = ENERGY / "rpi5-zeus-4busycores/vcgencmd/pmic_read_adc.txt"
    script = tmp_path / "bin/vcgencmd"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\n[ \"$1\" = pmic_read_adc ] && exec cat {recorded}\necho 'error=1 error_msg=\"Command not registered\"'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return power_w(recorded.read_text())


def test_pmic_meter_samples_in_a_child_process(fake_vcgencmd):
    pmic = meter("rpi5-pmic")
    found = pmic.detect()
    assert found.available and "PMIC rails" in found.scope and "not" not in found.reason
    pmic.start()
    time.sleep(0.8)
    reading = pmic.stop()
    assert reading.samples >= 3 and 4 <= reading.sample_rate_hz <= 10
    assert reading.energy_j == pytest.approx(fake_vcgencmd * reading.duration_s, rel=0.02)
    assert reading.average_w == pytest.approx(fake_vcgencmd, rel=0.02)
    assert "board" not in reading.scope


def test_pmic_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "vcgencmd is not on PATH" in meter("rpi5-pmic").detect().reason
