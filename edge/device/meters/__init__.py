"""Energy meters, one module each behind the ``Meter`` protocol (groundwork for ``edge profile``).

A meter says whether it can measure here (``detect`` -> ``Availability`` with the reason
when it cannot), then brackets a piece of work (``start`` ... ``stop`` -> ``Reading``). A
reading always says how it was obtained: method, sample rate, scope and whether the figure
is measured or estimated. No meter means energy is *unavailable* with a reason, never 0.
A meter that was available but fails during the run raises ``MeterError`` from ``stop``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.core.errors import MeterError  # noqa: F401  (raised by the meters; imported from here too)

# name -> "module:Class"; every class takes the file-system root (recorded trees in tests)
METERS = {
    "rapl": "edge.device.meters.rapl:RaplMeter",
    "rpi5-pmic": "edge.device.meters.rpi5_pmic:Rpi5PmicMeter",
    "hwmon": "edge.device.meters.hwmon:HwmonMeter",
    "ina3221": "edge.device.meters.ina3221:Ina3221Meter",
    "power-supply": "edge.device.meters.power_supply:PowerSupplyMeter",
    # opt-in only (edge profile --allow-estimate): no target lists it, so find() never picks it unasked
    "estimate": "edge.device.meters.estimate:EstimateMeter",
}



@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str  # why not, or what it measures
    scope: str = ""


@dataclass(frozen=True)
class Reading:
    energy_j: float
    duration_s: float
    method: str
    scope: str
    sample_rate_hz: float | None  # None: a cumulative counter, read at start and stop
    confidence: str = "measured"  # or "estimated"
    samples: int | None = None

    @property
    def average_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")


class Meter(Protocol):
    name: str

    def detect(self) -> Availability: ...

    def start(self) -> None: ...

    def stop(self) -> Reading: ...


def meter(name: str, root: str | Path = "/") -> Meter:
    module_name, cls_name = METERS[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)(root)


def find(names: list[str], root: str | Path = "/") -> tuple[Meter | None, dict[str, str]]:
    """The first available meter among ``names``, and why each other one is not."""
    reasons = {}
    for name in names:
        if name not in METERS:
            reasons[name] = "no meter of that name in this version of edge"
            continue
        candidate = meter(name, root)
        found = candidate.detect()
        if found.available:
            return candidate, reasons
        reasons[name] = found.reason
    return None, reasons
