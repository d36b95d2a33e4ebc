"""An energy *estimate*: a stated power figure times the run's duration, for when nothing measures.

Opt-in only: ``edge profile --allow-estimate`` asks for it by name. No target lists it (the
target schema does not even allow the name), so ``find`` never falls back to it unasked. Every
reading says ``confidence="estimated"`` and where its figure comes from; a figure describes a
typical board at some load, not this model, so it can only give an order of magnitude.

    meter = EstimateMeter(target="rpi4")          # or EstimateMeter(watts=6.0, source="my USB meter")
"""

from __future__ import annotations

import time
from pathlib import Path

from edge.device.meters import Availability, Reading

# target -> (watts, source). Raspberry Pi currents are at the 5 V input: watts = 5 V x current.
FIGURES = {
    # Raspberry Pi documentation, "Power supply", typical power requirements table (June 2019 image,
    # HDMI monitor, USB keyboard and mouse, Ethernet): Pi 4B "Stress" average 1.2 A
    "rpi4": (6.0, "Raspberry Pi documentation: Pi 4B stress average 1.2 A at 5 V"),
    # same documentation, "Typical bare-board active current consumption": Pi 5 800 mA (no stress figure given)
    "rpi5": (4.0, "Raspberry Pi documentation: Pi 5 typical bare-board active current 800 mA at 5 V"),
    # same table: Zero 2 W 350 mA
    "rpi-zero2w": (1.75, "Raspberry Pi documentation: Zero 2 W typical bare-board active current 350 mA at 5 V"),
    # NVIDIA Jetson Orin Nano 8GB module power modes 7 W and 15 W: the upper mode's budget, a ceiling
    "jetson-orin-nano": (15.0, "NVIDIA Jetson Orin Nano 8GB 15 W power mode budget (a ceiling, module only)"),
    # Intel ARK, Processor N100: Processor Base Power 6 W (the CPU package, not the mini PC)
    "x86-minipc": (6.0, "Intel ARK: N100 processor base power 6 W (CPU package only, not the whole PC)"),
}


class EstimateMeter:
    name = "estimate"

    def __init__(self, root: str | Path = "/", target: str | None = None, watts: float | None = None,
                 source: str | None = None) -> None:
        self._root, self._target = Path(root), target
        self._figure = (watts, source or "a figure given by the user") if watts is not None else None
        self._start: float | None = None

    def _stated(self) -> tuple[float, str] | None:
        if self._figure is None:
            if self._target is None:
                # imported only here: detection reads the whole target catalogue
                from edge.device.detect import detect
                from edge.core.errors import UnknownTargetError

                try:
                    self._target = detect(self._root).target
                except UnknownTargetError:
                    return None
            self._figure = FIGURES.get(self._target)
        return self._figure

    def detect(self) -> Availability:
        figure = self._stated()
        if figure is None:
            return Availability(False, f"no stated power figure for target {self._target or 'unknown'}; "
                                       "give one (watts) to estimate")
        watts, source = figure
        return Availability(True, f"estimate from {watts:g} W ({source}), not measured", _scope(source))

    def start(self) -> None:
        if self._stated() is None:
            raise RuntimeError("start() without a power figure: check detect() first")
        self._start = time.perf_counter()

    def stop(self) -> Reading:
        if self._start is None or self._figure is None:
            raise RuntimeError("stop() without start()")
        duration, (watts, source) = time.perf_counter() - self._start, self._figure
        self._start = None
        return Reading(watts * duration, duration, f"estimated from {watts:g} W ({source}), not measured",
                       _scope(source), None, confidence="estimated")


def _scope(source: str) -> str:
    return f"whatever the stated figure covers ({source}); the same power whatever the model does"
