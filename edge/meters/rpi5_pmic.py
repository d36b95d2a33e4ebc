"""Raspberry Pi 5 PMIC rails through ``vcgencmd pmic_read_adc``, sampled in a separate process.

The command prints one line per measurement, e.g. ``VDD_CORE_A current(7)=6.22421000A`` and
``VDD_CORE_V volt(15)=0.86173300V``: rails are paired BY NAME (the indices do not line up),
and EXT5V_V and BATT_V have no current. Their sum of V x I misses the 5 V input path and the
regulators' losses: it is labelled "PMIC rails", never "board power". Each reading spawns a
process, so sampling runs at 5-10 Hz in a child of its own, never in the timed loop.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edge.meters import Availability, Reading

INTERVAL_S = 0.15
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
    return subprocess.run([vcgencmd, "pmic_read_adc"], capture_output=True, text=True, timeout=5).stdout


def integrate(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """Joules from (time, watts) samples over [start, end], holding the first and last values."""
    inside = [(t, p) for t, p in samples if start <= t <= end]
    if not inside:
        inside = [min(samples, key=lambda s: abs(s[0] - (start + end) / 2))]
    points = [(start, inside[0][1]), *inside, (end, inside[-1][1])]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points, points[1:]))


class Rpi5PmicMeter:
    name = "rpi5-pmic"

    def __init__(self, root: str | Path = "/") -> None:
        self._vcgencmd = shutil.which("vcgencmd")
        self._child: subprocess.Popen | None = None
        self._start = 0.0

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
        self._child = subprocess.Popen([sys.executable, "-m", "edge.meters.rpi5_pmic", self._vcgencmd, str(INTERVAL_S)],
                                       stdout=subprocess.PIPE, text=True)
        self._start = time.monotonic()

    def stop(self) -> Reading:
        if self._child is None:
            raise RuntimeError("stop() without start()")
        end = time.monotonic()
        self._child.terminate()
        out, _ = self._child.communicate(timeout=10)
        self._child = None
        samples = [(float(t), float(p)) for t, p in (line.split() for line in out.splitlines() if line.strip())]
        if not samples:
            raise RuntimeError("the PMIC sampler returned no sample")
        duration = end - self._start
        rate = len([s for s in samples if self._start <= s[0] <= end]) / duration if duration > 0 else None
        return Reading(integrate(samples, self._start, end), duration, "vcgencmd pmic_read_adc, V x I per rail",
                       SCOPE, rate, samples=len(samples))


def _sample(vcgencmd: str, interval: float) -> None:
    """The child: one '<monotonic time> <watts>' line per reading until terminated."""
    while True:
        started = time.monotonic()
        print(f"{started:.6f} {power_w(_read(vcgencmd)):.6f}", flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    _sample(sys.argv[1], float(sys.argv[2]))
