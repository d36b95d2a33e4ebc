"""Power sensors in the hwmon class: an added INA219/INA226/INA260 (kernel ``ina2xx``) and the like.

A hwmon sensor measures the circuit its shunt is wired into (on a Raspberry Pi 4, usually the
5 V input through an added INA2xx board), nothing more, so the scope names the sensor and says
so. ``power*_input`` (uW, computed by the chip) is preferred; otherwise bus voltage (mV) x
current (mA) of one channel whose pairing is known: by matching labels, or the ina2xx layout
(in0 = shunt voltage, in1 = bus voltage, curr1). One channel per sensor: some chips report
input and output power, and adding them would count twice. The sign of the current depends on
which way the shunt was wired, so magnitudes are used. The Jetson INA3221 has a meter of its
own (``ina3221``: rails and labels) and is skipped here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge.core.sysfs import read_text
from edge.device.meters import Availability, MeterError, Reading
from edge.device.meters._sampler import INTERVAL_S, Sampler

INA2XX = {"ina209", "ina219", "ina220", "ina226", "ina230", "ina231", "ina233", "ina237", "ina238", "ina260"}
OWN_METER = {"ina3221"}


@dataclass(frozen=True)
class Sensor:
    path: Path
    name: str | None  # the hwmon ``name`` file; some trees (and recordings) lack it
    files: tuple[Path, ...]  # (power,) in uW, or (bus voltage mV, current mA)

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.name or 'no name file'})"

    @property
    def channel(self) -> str:
        return " x ".join(f.name for f in self.files)

    def power_w(self) -> float:
        return read_w(*self.files)


def read_w(*files: str | Path) -> float:
    """Watts from one power file (uW) or a voltage (mV) and a current (mA) file."""
    values = [abs(int(Path(f).read_text().strip())) for f in files]
    return values[0] / 1e6 if len(values) == 1 else values[0] * values[1] / 1e6


def _number(path: Path) -> int:
    found = re.search(r"\d+", path.name)
    return int(found.group()) if found else -1



def _channel(path: Path, name: str | None) -> tuple[Path, ...] | None:
    powers = sorted(path.glob("power*_input"), key=_number)
    if powers:
        return (powers[0],)
    labels = {read_text(f): f.name.split("_")[0] for f in path.glob("in*_label")}
    for curr_label in sorted(path.glob("curr*_label"), key=_number):
        volts = labels.get(read_text(curr_label))
        current = path / curr_label.name.replace("_label", "_input")
        if volts and (path / f"{volts}_input").is_file() and current.is_file():
            return path / f"{volts}_input", current
    ina2xx_layout = name in INA2XX or (name is None and (path / "shunt_resistor").is_file())
    if ina2xx_layout and (path / "in1_input").is_file() and (path / "curr1_input").is_file():
        return path / "in1_input", path / "curr1_input"
    return None


def sensors(root: Path) -> list[Sensor]:
    """Every hwmon device with a power channel this meter can read, in hwmon order."""
    found = []
    for path in sorted((root / "sys/class/hwmon").glob("hwmon*"), key=_number):
        name = read_text(path / "name")
        if name in OWN_METER:
            continue
        files = _channel(path, name)
        if files:
            found.append(Sensor(path, name, files))
    return found


class HwmonMeter:
    name = "hwmon"

    def __init__(self, root: str | Path = "/") -> None:
        self._sensors = sensors(Path(root))
        self._sampler: Sampler | None = None

    @property
    def scope(self) -> str:
        sensor = self._sensors[0]
        return (f"what the {sensor.label} sensor is wired to ({sensor.channel}), e.g. a board's 5 V input: "
                "not necessarily the whole device")

    def detect(self) -> Availability:
        if not self._sensors:
            return Availability(False, "no hwmon power sensor under /sys/class/hwmon (no INA2xx or similar "
                                       "with power*_input or a paired in*_input/curr*_input)")
        sensor = self._sensors[0]
        try:
            sensor.power_w()
        except PermissionError:
            return Availability(False, f"permission: cannot read {sensor.channel} of hwmon {sensor.label}")
        except (OSError, ValueError) as exc:
            return Availability(False, f"hwmon {sensor.label} unreadable: {exc}")
        others = [s.label for s in self._sensors[1:]]
        also = f"; also found {', '.join(others)} (not added: they may measure the same current)" if others else ""
        return Availability(True, f"hwmon {sensor.label} at {1 / INTERVAL_S:.0f} Hz{also}", self.scope)

    def start(self) -> None:
        if not self._sensors:
            raise MeterError(f"{self.name} meter is not available: {self.detect().reason}")
        self._sampler = Sampler("edge.device.meters.hwmon:read_w", self._sensors[0].files)
        self._sampler.start()

    def stop(self) -> Reading:
        if self._sampler is None:
            raise RuntimeError("stop() without start()")
        sampled, self._sampler = self._sampler.stop(), None
        return sampled.reading(f"hwmon {self._sensors[0].label} {self._sensors[0].channel}", self.scope)
