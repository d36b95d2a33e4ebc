"""Raspberry Pi 5 PMIC rails through ``vcgencmd pmic_read_adc``, sampled in a separate process.

The command prints one line per measurement, e.g. ``VDD_CORE_A current(7)=6.22421000A`` and
``VDD_CORE_V volt(15)=0.86173300V``: rails are paired BY NAME (the indices do not line up),
and EXT5V_V and BATT_V have no current. Their sum of V x I misses the 5 V input path and the
regulators' losses: it is labelled "PMIC rails", never "board power". Each reading spawns a
process, so sampling runs at 5-10 Hz in a child of its own (``edge.device.meters._sampler``), never in
the timed loop.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edge.device.meters import Availability, Reading
from edge.device.meters._sampler import INTERVAL_S, Sampler

SCOPE = "PMIC rails (sum of V x I over the paired rails; excludes the 5 V input path and conversion losses)"
_LINE = re.compile(r"^\s*(?P<rail>\w+)_(?P<kind>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-\d.]+)[AV]\s*$")


def rails(text: str) -> dict[str, tuple[float, float]]:
    """rail -> (volts, amps), for the rails that report both."""
    volts, amps = {}, {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            (amps if m["kind"] == "A" else volts)[m["rail"]] = float(m["value"])
    return {name: (volts[name], amps[name]) for name in sorted(volts.keys() & amps.keys())}


def power_w(text: str) -> float:
    return sum(v * a for v, a in rails(text).values())


def _read(vcgencmd: str) -> str:
    return subprocess.run([vcgencmd, "pmic_read_adc"], capture_output=True, text=True, timeout=5,
                          check=False).stdout  # a failed read shows as no rail


def sample_w(vcgencmd: str) -> float:
    """One reading, in watts (what the sampling child calls); no rail is a failed read, not 0 W."""
    found = rails(_read(vcgencmd))
    if not found:
        raise ValueError("vcgencmd pmic_read_adc printed no rail")
    return sum(v * a for v, a in found.values())


class Rpi5PmicMeter:
    name = "rpi5-pmic"

    def __init__(self, root: str | Path = "/") -> None:
        self._vcgencmd = shutil.which("vcgencmd")
        self._sampler: Sampler | None = None

    def detect(self) -> Availability:
        if not self._vcgencmd:
            return Availability(False, "vcgencmd is not on PATH (not a Raspberry Pi, or the firmware tools are missing)")
        try:
            found = rails(_read(self._vcgencmd))
        except (OSError, subprocess.SubprocessError) as exc:
            return Availability(False, f"vcgencmd pmic_read_adc failed: {exc}")
        if "VDD_CORE" not in found:
            return Availability(False, "vcgencmd has no pmic_read_adc rails (only the Raspberry Pi 5 reports them)")
        return Availability(True, f"{len(found)} PMIC rails at {1 / INTERVAL_S:.0f} Hz", SCOPE)

    def start(self) -> None:
        self._sampler = Sampler("edge.device.meters.rpi5_pmic:sample_w", [self._vcgencmd])
        self._sampler.start()

    def stop(self) -> Reading:
        if self._sampler is None:
            raise RuntimeError("stop() without start()")
        sampled, self._sampler = self._sampler.stop(), None
        return sampled.reading("vcgencmd pmic_read_adc, V x I per rail", SCOPE)
