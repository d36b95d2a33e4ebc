"""Battery discharge through /sys/class/power_supply: the whole device, but only on battery.

While a laptop or phone runs on its battery, the battery's output is everything the device
draws (screen and radios included). On mains, or charging, the battery current is the charger's
business and says nothing about the device, so the meter is available only while a battery
reports STATUS=Discharging, and ``stop`` refuses the reading if that changed during the run.

Power is ``power_now`` (uW) or ``voltage_now`` (uV) x ``current_now`` (uA), from the attribute
files or, where only those exist, the ``uevent`` lines. Vendors differ: Android fuel gauges
report a negative current while discharging (the magnitude is used), an Android ``bms`` supply
may carry the current while the ``battery`` supply carries the status, and some drivers report
mV and mA. A unit cannot be inferred from one current value (1000 uA is a real reading on an
idle phone), so an implausible power or voltage is refused with the values, never rescaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.device.meters import Availability, MeterError, Reading
from edge.device.meters._sampler import INTERVAL_S, Sampler

ON_MAINS = "on mains/charging: battery current does not measure the device"
ATTRIBUTES = ("type", "status", "online", "power_now", "voltage_now", "current_now")
PLAUSIBLE_W = (0.05, 500.0)  # a running phone draws more than 50 mW; a laptop less than 500 W
MIN_UV = 1_000_000  # a battery below 1 V "in uV" is a driver reporting mV


@dataclass(frozen=True)
class Supply:
    path: Path
    props: dict[str, str] = field(hash=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_battery(self) -> bool:
        # uevent-only trees may lack a type; a mains or USB supply has "online", a battery does not
        kind = self.props.get("type")
        return kind in ("Battery", "BMS") or (kind is None and "online" not in self.props
                                             and "voltage_now" in self.props)

    @property
    def measures(self) -> bool:
        return "power_now" in self.props or {"voltage_now", "current_now"} <= self.props.keys()


def properties(path: Path) -> dict[str, str]:
    """A supply's properties, lower-case without the POWER_SUPPLY_ prefix; attribute files win over uevent."""
    found = {}
    try:
        for line in (path / "uevent").read_text().splitlines():
            key, _, value = line.partition("=")
            found[key.removeprefix("POWER_SUPPLY_").lower()] = value.strip()
    except OSError:
        pass  # recorded trees (and some drivers) have the attribute files only
    for name in ATTRIBUTES:
        try:
            found[name] = (path / name).read_text().strip()
        except OSError:
            continue
    return found


def watts(props: dict[str, str]) -> float:
    if "power_now" in props:
        return abs(int(props["power_now"])) / 1e6
    if "voltage_now" in props and "current_now" in props:
        return abs(int(props["voltage_now"])) * abs(int(props["current_now"])) / 1e12
    raise ValueError("the battery reports neither power_now nor voltage_now and current_now")


def read_w(*paths: str | Path) -> float:
    """Watts drawn from the batteries at ``paths`` (what the sampling child calls)."""
    return sum(watts(properties(Path(p))) for p in paths)


def batteries(root: Path) -> list[Supply]:
    found = [Supply(p, properties(p)) for p in sorted((root / "sys/class/power_supply").glob("*"))]
    return [s for s in found if s.is_battery]


def statuses(found: list[Supply]) -> dict[str, str]:
    return {s.name: s.props["status"] for s in found if "status" in s.props}


def _problem(measured: list[Supply]) -> str | None:
    """Why the figures cannot be trusted as uW/uV/uA, or None."""
    for s in measured:
        volts = s.props.get("voltage_now")
        if "power_now" not in s.props and volts is not None and abs(int(volts)) < MIN_UV:
            return (f"{s.name} voltage_now={volts} is below 1 V read as uV: the driver reports mV, "
                    "so its current unit is unknown too")
    power = read_w(*(s.path for s in measured))
    if not PLAUSIBLE_W[0] <= power <= PLAUSIBLE_W[1]:
        values = "; ".join(f"{s.name}: " + ", ".join(f"{k}={s.props[k]}" for k in ATTRIBUTES[3:] if k in s.props)
                           for s in measured)
        return (f"{power:.4g} W while discharging is implausible ({values}): the driver does not update "
                "these values or uses other units (mW/mA); refusing rather than guessing")
    return None


class PowerSupplyMeter:
    name = "power-supply"

    def __init__(self, root: str | Path = "/") -> None:
        self._root = Path(root)
        self._measured: list[Supply] = []
        self._status: dict[str, str] = {}
        self._sampler: Sampler | None = None

    @property
    def scope(self) -> str:
        parts = []
        for s in self._measured:
            how = "power_now" if "power_now" in s.props else "voltage_now x |current_now|"
            if how != "power_now" and int(s.props["current_now"]) < 0:
                how += ", negative while discharging (Android sign): magnitude used"
            parts.append(f"{s.name}: {how}")
        return f"the whole device as its battery feeds it, screen and radios included ({'; '.join(parts)})"

    def detect(self) -> Availability:
        found = batteries(self._root)
        if not found:
            return Availability(False, "no battery under /sys/class/power_supply")
        self._status = statuses(found)
        if not self._status:
            return Availability(False, "no battery reports a status, so mains power cannot be ruled out")
        # a second battery may idle as "Unknown"; any charging, full or held one means mains power
        values = set(self._status.values())
        if "Discharging" not in values or values & {"Charging", "Full", "Not charging"}:
            return Availability(False, f"{ON_MAINS} (status: {_show(self._status)})")
        # Android: the "battery" supply may hold the status and a "bms" gauge the current; never add both
        self._measured = ([s for s in found if s.props.get("type") == "Battery" and s.measures]
                          or [s for s in found if s.measures])
        if not self._measured:
            return Availability(False, "the battery reports neither power_now nor voltage_now and current_now")
        try:
            problem = _problem(self._measured)
        except PermissionError:
            return Availability(False, "permission: cannot read the battery's power_supply attributes")
        except (OSError, ValueError) as exc:
            return Availability(False, f"battery values unreadable: {exc}")
        if problem:
            return Availability(False, problem)
        names = ", ".join(s.name for s in self._measured)
        return Availability(True, f"battery {names} discharging, at {1 / INTERVAL_S:.0f} Hz", self.scope)

    def start(self) -> None:
        if not self._measured:
            found = self.detect()
            if not found.available:
                raise MeterError(f"the battery meter is not available: {found.reason}")
        self._sampler = Sampler("edge.device.meters.power_supply:read_w", [s.path for s in self._measured])
        self._sampler.start()

    def stop(self) -> Reading:
        if self._sampler is None:
            raise RuntimeError("stop() without start()")
        sampled, self._sampler = self._sampler.stop(), None
        now = statuses(batteries(self._root))
        if now != self._status:
            raise MeterError(f"the battery status changed during the run ({_show(self._status)} -> {_show(now)}): "
                             f"{ON_MAINS}")
        method = "battery " + ", ".join(
            f"{s.name} {'power_now' if 'power_now' in s.props else 'voltage_now x current_now'}"
            for s in self._measured)
        return sampled.reading(method + " (power_supply sysfs)", self.scope)


def _show(status: dict[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in status.items()) or "none"
