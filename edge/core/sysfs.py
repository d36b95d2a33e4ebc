"""Reading the small text files of /proc and /sys (or of a recorded tree below another root).

A file that is missing, unreadable or not a number reads as None: the caller says what could
not be read, and never fills in a value.

    >>> read_int(Path("/sys/devices/system/cpu/cpu0/cpu_capacity"))  # doctest: +SKIP
    1024
"""

from __future__ import annotations

from pathlib import Path


def read_text(path: str | Path) -> str | None:
    """The file's text with surrounding whitespace and NULs removed (device-tree strings end in one)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n\t ")
    except OSError:
        return None


def read_int(path: str | Path) -> int | None:
    """The file's text as an integer (sysfs counters, kHz, uW ...)."""
    text = read_text(path)
    try:
        return int(text) if text else None
    except ValueError:
        return None
