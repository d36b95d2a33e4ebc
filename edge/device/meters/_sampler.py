"""Poll a power figure in a child process and integrate it over the bracketed work.

Sensors without an energy counter (the Pi 5 PMIC, hwmon and INA3221 sensors, batteries) only
say what the power is now. Polling them in the timed loop would perturb the timing, so a child
process polls at 5-10 Hz and writes ``<monotonic time> <watts>`` lines to a file (a pipe would
fill up and stall the child on a run of several minutes). The parent waits for the child's
first sample in ``start`` and takes one last sample itself in ``stop``, so both edges of the
bracket have a fresh value, and integrates by the trapezoid rule.

The child runs ``python -m edge.device.meters._sampler MODULE:FUNCTION INTERVAL OUT ARG...``: the
function takes the string arguments and returns watts, the same function the meter calls.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from edge.device.meters import MeterError, Reading

INTERVAL_S = 0.15
START_TIMEOUT_S = 10.0


def integrate(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """Joules from (time, watts) samples over [start, end], holding the first and last values."""
    inside = [(t, p) for t, p in samples if start <= t <= end]
    if not inside:
        inside = [min(samples, key=lambda s: abs(s[0] - (start + end) / 2))]
    points = [(start, inside[0][1]), *inside, (end, inside[-1][1])]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(points))


def resolve(source: str) -> Callable[..., float]:
    module_name, function = source.split(":")
    return getattr(importlib.import_module(module_name), function)


@dataclass(frozen=True)
class Sampled:
    start: float
    end: float
    samples: list[tuple[float, float]]  # (monotonic time, watts), the child's and the final one
    polled: int  # how many of them the child took
    interval_s: float
    failed: list[str]  # why each failed read failed

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def reading(self, method: str, scope: str) -> Reading:
        if self.failed:
            method += f" ({len(self.failed)} of {len(self.failed) + self.polled} reads failed, first: {self.failed[0]})"
        # the child's own pace, not samples / duration: a run shorter than one interval still
        # had its edges sampled, at this rate
        child = [t for t, _ in self.samples[:self.polled]]
        span = child[-1] - child[0] if child else 0.0
        rate = (len(child) - 1) / span if span > 0 else 1 / self.interval_s
        return Reading(integrate(self.samples, self.start, self.end), self.duration_s, method, scope, rate,
                       samples=len(self.samples))


class Sampler:
    """``Sampler("edge.device.meters.hwmon:read_w", [path]).start()`` ... ``.stop()`` -> ``Sampled``."""

    def __init__(self, source: str, args: Sequence[str], interval_s: float = INTERVAL_S) -> None:
        self._source, self._args, self._interval = source, [str(a) for a in args], interval_s
        self._child: subprocess.Popen | None = None
        self._out: Path | None = None
        self._start = 0.0

    def start(self) -> None:
        handle, name = tempfile.mkstemp(prefix="edge-meter-", suffix=".txt")
        os.close(handle)
        self._out = Path(name)
        self._child = subprocess.Popen(
            [sys.executable, "-m", "edge.device.meters._sampler", self._source, str(self._interval), name, *self._args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (first := self._out.read_text().partition("\n"))[1]:  # open the bracket on a fresh value
            if self._child.poll() is not None or time.monotonic() > deadline:
                raise MeterError(f"the sampler process gave no sample: {self._abandon() or 'no output'}")
            time.sleep(0.01)
        if first[0].startswith("#"):
            self._abandon()
            raise MeterError(f"the sensor did not answer: {first[0].split(' ', 1)[-1]}")
        self._start = time.monotonic()

    def stop(self) -> Sampled:
        if self._child is None or self._out is None:
            raise RuntimeError("stop() without start()")
        end = time.monotonic()
        try:
            last: list[tuple[float, float]] = [(time.monotonic(), resolve(self._source)(*self._args))]
        except (OSError, ValueError, subprocess.SubprocessError):
            last = []  # the child's samples still bracket the run; the edge is held from the latest
        self._child.terminate()
        self._child.communicate(timeout=10)
        self._child = None
        samples, failed = [], []
        for line in self._out.read_text().splitlines(keepends=True):
            if line.startswith("#") and line.endswith("\n"):
                failed.append(line.split(" ", 1)[-1].strip())  # "#<time> <error>" -> the error
            elif line.endswith("\n"):  # a line cut by terminate() has no newline yet
                t, w = line.split()
                samples.append((float(t), float(w)))
        self._out.unlink(missing_ok=True)
        if len(samples) < len(failed):
            raise MeterError(f"the sensor stopped answering during the run: {len(failed)} reads failed, "
                             f"first: {failed[0]}")
        return Sampled(self._start, end, samples + last, len(samples), self._interval, failed)

    def _abandon(self) -> str:
        """Stop the child and clean up; its last word on stderr, if it crashed."""
        self._child.kill()
        _, err = self._child.communicate(timeout=10)
        self._child = None
        self._out.unlink(missing_ok=True)
        return ((err or "").strip().splitlines() or [""])[-1]


def _poll(source: str, interval: float, out: str, args: list[str]) -> None:
    """The child: one sample per interval until terminated; a failed read is a '#' line, not a crash."""
    read = resolve(source)
    with open(out, "a", buffering=1) as sink:
        while True:
            started = time.monotonic()
            try:
                sink.write(f"{started:.6f} {read(*args):.6f}\n")
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
                sink.write(f"#{started:.6f} {message}\n")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    _poll(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:])
