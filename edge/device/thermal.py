"""Temperature, CPU frequency and Raspberry Pi throttling, read before and after a profiled run.

A latency or energy figure taken while the SoC was throttling describes a slowed-down device,
so the profiler snapshots this state around every run and ``compare`` says what changed::

    from edge.device import thermal

    before = thermal.snapshot()
    ...                                   # the timed work
    flags = thermal.compare(before, thermal.snapshot())

Sources: ``/sys/class/thermal/thermal_zone*/temp`` (millidegrees C; ``vcgencmd measure_temp``
when no zone exists), ``/sys/devices/system/cpu/cpu*/cpufreq/`` (kHz) and ``vcgencmd
get_throttled`` found on PATH. Whatever cannot be read is listed in ``unavailable`` with the
reason, never filled in.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.core.sysfs import read_int, read_text

__all__ = ["ThermalState", "compare", "decode_throttled", "snapshot"]

# get_throttled bit -> condition; bit + 16 is the same condition "has occurred since boot"
CONDITIONS = {0: "under-voltage", 1: "arm frequency capped", 2: "throttled", 3: "soft temperature limit"}
SINCE_BOOT = 16
TEMP_RISE_C = 5.0  # below this a rise is ordinary warm-up, not worth a flag
FREQ_DROP = 0.10  # relative drop of the fastest core's clock worth a flag

_TEMP = re.compile(r"temp=(?P<c>[-\d.]+)'C")
_THROTTLED = re.compile(r"throttled=(?P<hex>0x[0-9a-fA-F]+)")


@dataclass(frozen=True)
class ThermalState:
    temp_c: float | None
    freq_mhz: list[float] | None  # per CPU, in cpu number order
    governor: str | None
    throttled: str | None  # vcgencmd get_throttled as printed, e.g. "0x50005"
    throttled_flags: list[str]
    unavailable: list[str]  # "what: why"

    def to_dict(self) -> dict:
        return asdict(self)


def decode_throttled(value: int) -> list[str]:
    """Names of the set bits: ``decode_throttled(0x50005)`` -> under-voltage now, throttled now, ..."""
    flags = [f"{name} now" for bit, name in CONDITIONS.items() if value >> bit & 1]
    return flags + [f"{name} has occurred since boot" for bit, name in CONDITIONS.items()
                    if value >> (bit + SINCE_BOOT) & 1]


def _vcgencmd(*args: str) -> str:
    """Output of ``vcgencmd ARGS``; raises OSError/SubprocessError, or LookupError when it is not on PATH."""
    path = shutil.which("vcgencmd")
    if path is None:
        raise LookupError("vcgencmd is not on PATH (not a Raspberry Pi, or the firmware tools are missing)")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=5, check=True).stdout


def _temperature(root: Path, unavailable: list[str]) -> float | None:
    # some zones refuse reads (EINVAL/ENODATA) while their sensor sleeps: they read as None
    readings = (read_int(zone) for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*/temp")))
    temps = [milli / 1000 for milli in readings if milli is not None]
    if temps:
        return max(temps)
    try:
        found = _TEMP.search(_vcgencmd("measure_temp"))
    except (LookupError, OSError, subprocess.SubprocessError) as exc:
        unavailable.append(f"temperature: no readable /sys/class/thermal/thermal_zone*/temp, and {exc}")
        return None
    if found is None:
        unavailable.append("temperature: no readable thermal zone and vcgencmd measure_temp printed no temp=")
        return None
    return float(found["c"])


def _cpus(root: Path) -> list[Path]:
    cpus = (root / "sys/devices/system/cpu").glob("cpu[0-9]*")
    return sorted((p for p in cpus if p.name[3:].isdigit()), key=lambda p: int(p.name[3:]))


def _frequency(root: Path, unavailable: list[str]) -> tuple[list[float] | None, str | None]:
    freqs, governors = [], set()
    for cpu in _cpus(root):  # an offline CPU has no cpufreq folder
        khz, governor = read_int(cpu / "cpufreq/scaling_cur_freq"), read_text(cpu / "cpufreq/scaling_governor")
        if khz is not None:
            freqs.append(khz / 1000)
        if governor:
            governors.add(governor)
    if not freqs:
        unavailable.append("frequency: no /sys/devices/system/cpu/cpu*/cpufreq (no cpufreq driver, or a VM)")
    if not governors:
        unavailable.append("governor: no /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")
    return freqs or None, ",".join(sorted(governors)) or None


def _throttled(unavailable: list[str]) -> tuple[str | None, list[str]]:
    try:
        found = _THROTTLED.search(_vcgencmd("get_throttled"))
    except (LookupError, OSError, subprocess.SubprocessError) as exc:
        unavailable.append(f"throttled: {exc}")
        return None, []
    if found is None:
        unavailable.append("throttled: vcgencmd get_throttled printed no throttled=0x...")
        return None, []
    return found["hex"], decode_throttled(int(found["hex"], 16))


def snapshot(root: str | Path = "/") -> ThermalState:
    """The thermal state now; ``root`` is the file-system root (a recorded tree in tests).

    >>> snapshot().temp_c  # doctest: +SKIP
    42.932
    """
    root, unavailable = Path(root), []
    temp = _temperature(root, unavailable)
    freqs, governor = _frequency(root, unavailable)
    throttled, flags = _throttled(unavailable)
    return ThermalState(temp, freqs, governor, throttled, flags, unavailable)


def compare(before: ThermalState, after: ThermalState) -> list[str]:
    """What changed during the run that makes its figures suspect; [] when nothing did.

    >>> compare(snapshot(), snapshot())  # doctest: +SKIP
    []
    """
    flags = []
    if before.throttled is not None and after.throttled is not None:
        old, new = int(before.throttled, 16), int(after.throttled, 16)
        for bit, name in CONDITIONS.items():
            if new >> bit & 1:
                when = "was already active before" if old >> bit & 1 else "began during"
                flags.append(f"throttling {when} the run: {name} active")
            elif new >> (bit + SINCE_BOOT) & 1 and not old >> (bit + SINCE_BOOT) & 1:
                # the "now" bit came and went between the two reads: only the sticky bit shows it
                flags.append(f"throttling occurred during the run and cleared: {name}")
    if before.temp_c is not None and after.temp_c is not None and after.temp_c - before.temp_c >= TEMP_RISE_C:
        flags.append(f"temperature rose by {after.temp_c - before.temp_c:.1f} °C "
                     f"({before.temp_c:.1f} -> {after.temp_c:.1f} °C)")
    if before.freq_mhz and after.freq_mhz:
        old_max, new_max = max(before.freq_mhz), max(after.freq_mhz)
        if new_max < old_max * (1 - FREQ_DROP):
            flags.append(f"CPU frequency dropped from {old_max:.0f} to {new_max:.0f} MHz (fastest core)")
    if before.governor and after.governor and before.governor != after.governor:
        flags.append(f"CPU governor changed from {before.governor} to {after.governor}")
    return flags
