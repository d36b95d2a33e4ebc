"""Intel/AMD RAPL through the powercap sysfs: cumulative energy counters in microjoules.

Zones nest: core, uncore and dram sit inside a package, and psys (platform) covers the
packages and more. Summing levels would count energy twice, so this meter reads psys alone
when it exists, else the top-level packages, never their subzones. Each counter wraps at its
``max_energy_range_uj``. Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root
only: that is reported as unavailable, never as zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edge.device.meters import Availability, Reading


@dataclass(frozen=True)
class Zone:
    path: Path
    name: str
    max_range_uj: int

    def energy_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def zones(root: Path) -> list[Zone]:
    """Top-level zones (intel-rapl:N), in either sysfs layout, without their subzones."""
    base = root / "sys/class/powercap"
    found = {}
    for path in list(base.glob("intel-rapl:*")) + list(base.glob("intel-rapl/intel-rapl:*")):
        if path.name.count(":") != 1 or not (path / "name").is_file():
            continue
        max_range = path / "max_energy_range_uj"
        found[path.name] = Zone(path, (path / "name").read_text().strip(),
                                int(max_range.read_text().strip()) if max_range.is_file() else 0)
    chosen = sorted(found.values(), key=lambda z: z.path.name)
    psys = [z for z in chosen if z.name == "psys"]
    return psys or [z for z in chosen if z.name.startswith("package")]


class RaplMeter:
    name = "rapl"

    def __init__(self, root: str | Path = "/") -> None:
        self._zones = zones(Path(root))
        self._start: tuple[float, list[int]] | None = None

    @property
    def scope(self) -> str:
        if any(z.name == "psys" for z in self._zones):
            return "platform (RAPL psys: CPU packages, graphics, memory controller and more)"
        return f"CPU package{'s' if len(self._zones) > 1 else ''} (RAPL {', '.join(z.name for z in self._zones)})"

    def detect(self) -> Availability:
        if not self._zones:
            return Availability(False, "no RAPL zones under /sys/class/powercap (not Intel/AMD, no powercap driver, or a VM)")
        try:
            [z.energy_uj() for z in self._zones]
        except PermissionError:
            return Availability(False, "permission: RAPL energy_uj is readable by root only since Linux 5.10 "
                                       "(CVE-2020-8694); run as root or grant read access")
        except (OSError, ValueError) as exc:
            return Availability(False, f"RAPL counters unreadable: {exc}")
        return Availability(True, "RAPL energy counters", self.scope)

    def start(self) -> None:
        self._start = (time.perf_counter(), [z.energy_uj() for z in self._zones])

    def stop(self) -> Reading:
        if self._start is None:
            raise RuntimeError("stop() without start()")
        end_time, ends = time.perf_counter(), [z.energy_uj() for z in self._zones]
        start_time, starts = self._start
        total = sum(delta_uj(a, b, z.max_range_uj) for a, b, z in zip(starts, ends, self._zones))
        return Reading(total / 1e6, end_time - start_time, "RAPL energy counters (powercap sysfs)", self.scope, None)


def delta_uj(start: int, end: int, max_range: int) -> int:
    """Energy between two counter reads; a counter that went down has wrapped once."""
    return end - start if end >= start else end + max_range - start
