"""A job on many devices at once: each in its own thread and SSH connection, each failure its own.

A device that cannot be reached, drops the connection or runs out of time is reported and the
others go on. Results are written (atomically) as each device finishes, so Ctrl-C keeps what
arrived, and a device whose result file exists is skipped on the next run.

    >>> outcomes = run_all(devices, job, RunOptions(out_dir=Path("results")))  # doctest: +SKIP
    >>> [o.status for o in outcomes]
    ['done', 'done', 'failed']
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from edge.core.errors import EdgeError
from edge.core.files import write_atomic
from edge.remote.devices import Device
from edge.remote.session import Session
from edge.remote.ssh import SshTransport

log = logging.getLogger(__name__)

# A job gets a ready session (logged in, edge found) and returns the bytes to keep, or None.
Job = Callable[[Session], bytes | None]


@dataclass(frozen=True)
class RunOptions:
    timeout_s: float
    bootstrap: bool = False
    accept_new_host_keys: bool = False
    out_dir: Path | None = None  # where NAME.json goes; None: nothing is written
    suffix: str = ".json"
    parallel: int = 8
    on_line: Callable[[Device, str], None] | None = None  # progress, one line at a time


@dataclass(frozen=True)
class Outcome:
    device: Device
    status: str  # done | skipped | failed | interrupted
    path: Path | None = None
    data: bytes | None = None
    error: str | None = None
    hint: str | None = None


def result_path(options: RunOptions, device: Device) -> Path | None:
    return options.out_dir / f"{device.name}{options.suffix}" if options.out_dir else None


def run_all(devices: list[Device], job: Job, options: RunOptions) -> list[Outcome]:
    """Run ``job`` on every device; the outcomes come back in the devices' order."""
    outcomes: dict[str, Outcome] = {}
    pending = []
    for device in devices:
        path = result_path(options, device)
        if path is not None and path.is_file():
            outcomes[device.name] = Outcome(device, "skipped", path)
        else:
            pending.append(device)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="edge-ssh-") as control:
        pool = ThreadPoolExecutor(max_workers=max(1, min(options.parallel, len(pending) or 1)))
        futures = {pool.submit(_one, device, job, options, Path(control), stop): device for device in pending}
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.device.name] = outcome
        except KeyboardInterrupt:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            for future, device in futures.items():
                if device.name not in outcomes:
                    done = future.done() and not future.cancelled() and future.exception() is None
                    outcomes[device.name] = future.result() if done else Outcome(device, "interrupted", error="interrupted")
            raise Interrupted([outcomes[d.name] for d in devices if d.name in outcomes])
        pool.shutdown(wait=True)
    return [outcomes[d.name] for d in devices]


class Interrupted(Exception):
    """Ctrl-C: what had arrived is in ``outcomes`` (and on disk)."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes


def _one(device: Device, job: Job, options: RunOptions, control: Path, stop: threading.Event) -> Outcome:
    def line(text: str) -> None:
        if options.on_line and not stop.is_set():
            options.on_line(device, text)

    transport = SshTransport(device, control, options.accept_new_host_keys)
    session = Session(transport, device, line, device.timeout_s or options.timeout_s)
    try:
        session.start(options.bootstrap)
        data = job(session)
        path = result_path(options, device)
        if path is not None and data is not None:
            write_atomic(path, data)
        return Outcome(device, "done", path, data)
    except EdgeError as exc:
        log.debug("%s failed", device.name, exc_info=True)
        return Outcome(device, "interrupted" if stop.is_set() else "failed", error=exc.message, hint=exc.hint)
    finally:
        try:
            transport.close()
        except Exception:  # closing a connection that already died has nothing left to report
            log.debug("closing %s", device.name, exc_info=True)

