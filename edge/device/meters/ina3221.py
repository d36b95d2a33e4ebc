"""Jetson power rails through the INA3221 monitors (mainline ``ina3221`` hwmon driver).

Each chip has three channels: ``in{1,2,3}_input`` bus voltage (mV), ``curr{1,2,3}_input``
current (mA), ``in{1,2,3}_label`` the rail's name from the device tree. ``in4..6`` are the same
channels' shunt voltages and ``in7``/``curr4`` their sum, so only channels 1-3 are paired and a
channel labelled "NC" (not connected) or "sum of shunt voltages" is never added. The VDD_IN rail
(POM_5V_IN on the Nano) is the module's whole input and already contains the other rails: when
it exists it is read alone; otherwise the rails are summed and the scope says what that misses.
The older L4T 32 ``ina3221x`` driver exposes iio files instead and is not read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.core.sysfs import read_text
from edge.device.meters import Availability, MeterError, Reading
from edge.device.meters._sampler import INTERVAL_S, Sampler

INPUT_RAILS = {"VDD_IN", "POM_5V_IN"}


@dataclass(frozen=True)
class Rail:
    device: str  # i2c address folder, e.g. 1-0040
    label: str
    volts: Path  # bus voltage, mV
    amps: Path  # current, mA


def read_w(*files: str | Path) -> float:
    """Watts from (voltage mV, current mA) file pairs, summed."""
    values = [int(Path(f).read_text().strip()) for f in files]
    return sum(v * i for v, i in zip(values[::2], values[1::2])) / 1e6



def _not_a_rail(label: str) -> bool:
    return label.strip().lower() == "nc" or "sum of shunt" in label.lower()


def rails(root: Path) -> list[Rail]:
    """Every connected, enabled channel 1-3 of every INA3221 under the i2c driver folder."""
    found = []
    for hwmon in sorted(root.glob("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*")):
        device = hwmon.parent.parent.name
        for n in (1, 2, 3):
            label = read_text(hwmon / f"in{n}_label") or f"{device} channel {n}"
            volts, amps = hwmon / f"in{n}_input", hwmon / f"curr{n}_input"
            if _not_a_rail(label) or read_text(hwmon / f"in{n}_enable") == "0":
                continue
            if volts.is_file() and amps.is_file():
                found.append(Rail(device, label, volts, amps))
    return found


def chosen(found: list[Rail]) -> tuple[list[Rail], str]:
    """The rails to read and the scope: VDD_IN alone when present, else the sum of the rails."""
    inputs = [r for r in found if r.label in INPUT_RAILS]
    if inputs:
        rail = inputs[0]
        return [rail], (f"the Jetson module's input (INA3221 {rail.label} on {rail.device}): CPU, GPU, memory "
                        "and the module's regulators; not the carrier board or USB devices")
    return found, (f"sum of the INA3221 rails {', '.join(r.label for r in found)} (no VDD_IN channel: "
                   "misses whatever no rail covers, such as regulator losses and the carrier board)")


class Ina3221Meter:
    name = "ina3221"

    def __init__(self, root: str | Path = "/") -> None:
        self._root = Path(root)
        self._rails, self.scope = chosen(rails(self._root))
        self._sampler: Sampler | None = None

    @property
    def _files(self) -> list[Path]:
        return [f for r in self._rails for f in (r.volts, r.amps)]

    def detect(self) -> Availability:
        if not self._rails:
            if list(self._root.glob("sys/bus/i2c/drivers/ina3221x/*")):
                return Availability(False, "only the L4T 32 ina3221x (iio) driver is present; this meter reads "
                                           "the mainline ina3221 hwmon driver (L4T 34 and later)")
            return Availability(False, "no INA3221 channel under /sys/bus/i2c/drivers/ina3221 (not a Jetson, "
                                       "or its power monitors are not bound to the hwmon driver)")
        try:
            read_w(*self._files)
        except PermissionError:
            return Availability(False, "permission: cannot read the INA3221 channels")
        except (OSError, ValueError) as exc:
            return Availability(False, f"INA3221 channels unreadable: {exc}")
        names = ", ".join(r.label for r in self._rails)
        return Availability(True, f"INA3221 {names} at {1 / INTERVAL_S:.0f} Hz", self.scope)

    def start(self) -> None:
        if not self._rails:
            raise MeterError(f"{self.name} meter is not available: {self.detect().reason}")
        self._sampler = Sampler("edge.device.meters.ina3221:read_w", self._files)
        self._sampler.start()

    def stop(self) -> Reading:
        if self._sampler is None:
            raise RuntimeError("stop() without start()")
        sampled, self._sampler = self._sampler.stop(), None
        names = ", ".join(r.label for r in self._rails)
        return sampled.reading(f"INA3221 hwmon bus voltage x current ({names})", self.scope)
