"""What the measuring child reads besides the clock: memory, energy, thermal state, runtime settings.

Each figure that cannot be read is reported as unavailable with the reason, never as 0.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
MEMORY_METHOD = "VmRSS/VmHWM from /proc/self/status; high-water mark reset via /proc/self/clear_refs"


def _status_mb(key: str) -> float | None:
    try:
        text = STATUS.read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+)\s*kB", text, re.MULTILINE)
    return round(int(found.group(1)) / 1024, 2) if found else None


def rss_mb() -> float | None:
    return _status_mb("VmRSS")


def peak_mb() -> float | None:
    return _status_mb("VmHWM")


def reset_peak() -> str | None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); returns why not, or None when done."""
    try:
        CLEAR_REFS.write_text("5", encoding="utf-8")
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def memory(after_imports: float | None, after_init: float | None, peak: float | None, reset_error: str | None) -> dict:
    if after_imports is None:
        method = "unavailable: no /proc/self/status on this system"
    elif reset_error:
        method = (f"VmRSS/VmHWM from /proc/self/status; high-water mark NOT reset ({reset_error}): "
                  "the peak covers the whole process")
    else:
        method = MEMORY_METHOD

    def minus(a: float | None, b: float | None) -> float | None:
        return round(a - b, 2) if a is not None and b is not None else None

    return {"after_imports": after_imports, "after_init": after_init, "init_delta": minus(after_init, after_imports),
            "peak": peak, "model": minus(peak, after_imports), "method": method}


class Energy:
    """A meter (or none) around the idle baseline and the timed loop; a failing meter loses energy only.

    The loaded window lasts at least as long as the idle baseline: a 5 ms loop is shorter than
    one RAPL update or one PMIC sample, so ``keep_busy`` runs more (untimed) inferences until it is.
    """

    def __init__(self, names: list[str], root: str) -> None:
        from edge.device.meters import find

        self.meter, self.tried = find(names, root)
        self.failed: str | None = None
        self.idle_reading = self.reading = None
        self._started = 0.0

    def _safe(self, step):
        if self.meter is None or self.failed:
            return None
        from edge.device.meters import MeterError

        try:
            return step()
        except MeterError as exc:  # the meter's own word: sensor gone, battery plugged in
            self.failed = f"meter {self.meter.name} failed: {exc.message}"
        except (OSError, RuntimeError, ValueError) as exc:  # a counter that vanished mid-run
            self.failed = f"meter {self.meter.name} failed: {exc}"
        return None

    def idle(self, seconds: float) -> None:
        def baseline():
            self.meter.start()
            time.sleep(seconds)
            return self.meter.stop()

        self.idle_reading = self._safe(baseline)

    def start(self) -> None:
        self._started = time.perf_counter()
        self._safe(lambda: self.meter.start())

    def keep_busy(self, call, arg, seconds: float) -> int:
        """Untimed calls until the window is ``seconds`` long; returns how many."""
        count = 0
        while self.meter is not None and not self.failed and time.perf_counter() - self._started < seconds:
            call(arg)
            count += 1
        return count

    def stop(self) -> None:
        self.reading = self._safe(lambda: self.meter.stop())

    def to_dict(self, count: int) -> dict[str, Any]:
        if self.meter is None:
            return {"available": False, "reason": _why_none(self.tried), "tried": self.tried}
        reading, idle = self.reading, self.idle_reading
        if not self.failed and (reading is None or idle is None or reading.duration_s <= 0 or idle.duration_s <= 0):
            self.failed = f"meter {self.meter.name} measured no time span"
        if self.failed:
            return {"available": False, "reason": self.failed, "tried": {**self.tried, self.meter.name: self.failed}}
        idle_w = idle.energy_j / idle.duration_s
        return {
            "available": True, "meter": self.meter.name, "method": reading.method, "scope": reading.scope,
            "sample_rate_hz": reading.sample_rate_hz, "confidence": reading.confidence,
            "inferences": count, "duration_s": reading.duration_s, "total_j": reading.energy_j,
            "per_inference_j": reading.energy_j / count,
            "average_w": reading.average_w, "idle_w": idle_w, "idle_duration_s": idle.duration_s,
            "above_idle_per_inference_j": (reading.energy_j - idle_w * reading.duration_s) / count,
        }


def _why_none(tried: dict[str, str]) -> str:
    if not tried:
        return "no energy meter is known for this target (name one with --meter, or pass --allow-estimate)"
    if len(tried) == 1:
        return next(iter(tried.values()))
    return "no meter available: " + "; ".join(f"{name}: {why}" for name, why in tried.items())


def thermal_record(before, after) -> dict[str, Any]:
    """``edge.device.thermal`` snapshots taken around the run, as the schema's ``thermal`` field."""
    from edge.device import thermal

    start, end = before.to_dict(), after.to_dict()
    unavailable = start.pop("unavailable")  # what could not be read before is what could not be read at all
    end.pop("unavailable")
    return {"before": start, "after": end, "flags": thermal.compare(before, after), "unavailable": unavailable}


def runtime_settings(session: Any, threads: int, disabled: list[str] | None = None) -> dict[str, Any]:
    """The settings that change speed and memory, as the runtime reports them (onnxruntime does not
    report the optimizers it was told to leave out: ``disabled`` is what it was given)."""
    raw = getattr(session, "raw", None)
    if raw is not None and hasattr(raw, "get_session_options"):  # onnxruntime
        options = raw.get_session_options()
        try:
            spinning = options.get_session_config_entry("session.intra_op.allow_spinning") != "0"
        except RuntimeError:  # not set: onnxruntime's default, threads spin after each run
            spinning = True
        return {"arena": options.enable_cpu_mem_arena, "mem_pattern": options.enable_mem_pattern,
                "intra_op_threads": options.intra_op_num_threads, "allow_spinning": spinning,
                "graph_optimization": options.graph_optimization_level.name, "disabled_optimizers": disabled}
    options = getattr(session, "options", {})
    resolver = options.get("experimental_op_resolver_type")
    return {"num_threads": threads,
            "op_resolver": resolver or "the interpreter's default (XNNPACK delegate for the ops it supports)",
            "xnnpack_latest_features": bool(options.get("experimental_default_delegate_latest_features"))}
