"""``--device ssh://...`` and ``--fleet FILE`` for ``edge profile``, ``edge run`` and ``edge detect``.

The command runs on each device as the user would run it there; this module builds its
argument list from the parsed options (never from the user's raw text), streams each device's
progress with its name in front, and ends with one line per device.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import click
from rich.markup import escape

from edge.core.errors import DeviceError, last_line, UsageError
from edge.remote.devices import Device, load_fleet, unique

TIMEOUTS = {"profile": 3600.0, "run": 900.0, "detect": 300.0, "tune": 3600.0}  # seconds per device, login to result


def options(command):
    """The remote options, the same on every command that takes them."""
    for option in reversed([
        click.option("--device", "devices", multiple=True, metavar="ssh://USER@HOST[:PORT]",
                     help="Run on this device over SSH instead of here (repeat for several)."),
        click.option("--fleet", type=click.Path(dir_okay=False, path_type=Path),
                     help="A TOML file naming devices (and their targets) to run on."),
        click.option("--bootstrap", is_flag=True, help="Install this edge in a venv on the devices, from wheels this host sends."),
        click.option("--accept-new-host-keys", is_flag=True,
                     help="Record the host key of a device seen for the first time (a changed key is still refused)."),
        click.option("--ssh-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="The ssh_config file to use (default: ssh's own, ~/.ssh/config)."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), help="Seconds per device for the whole job."),
    ]):
        command = option(command)
    return command


def wanted(params: dict) -> bool:
    return bool(params.get("devices") or params.get("fleet"))


def devices_of(params: dict) -> list[Device]:
    config = params.get("ssh_config")
    found = [Device.parse(url, ssh_config=config) for url in params.get("devices") or ()]
    if params.get("fleet"):
        fleet = load_fleet(params["fleet"])
        found += [d if d.ssh_config or not config else replace(d, ssh_config=config) for d in fleet]
    return unique(found, "--device/--fleet")



def _run_options(command: str, params: dict, out_dir: Path | None, on_line):
    from edge.remote.fleet import RunOptions

    return RunOptions(timeout_s=params.get("timeout_s") or TIMEOUTS[command], bootstrap=params["bootstrap"],
                      accept_new_host_keys=params["accept_new_host_keys"], out_dir=out_dir, on_line=on_line)


def _lines(console):
    def on_line(device: Device, text: str) -> None:
        if not text.strip():
            return
        console.print(f"[dim]{escape(device.name)}:[/] {escape(text)}", highlight=False, soft_wrap=True)

    return on_line


def _run(devices, job, run_options, out, err):
    from edge.remote import fleet

    try:
        outcomes = fleet.run_all(devices, job, run_options)
    except fleet.Interrupted as stopped:
        _summary(stopped.outcomes, out)
        err.print("interrupted: the results that arrived are kept; run again to finish the rest", highlight=False)
        raise SystemExit(130)
    _summary(outcomes, out)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        done = sum(o.status in ("done", "skipped") for o in outcomes)
        first = failed[0]
        raise DeviceError(f"{len(failed)} of {len(outcomes)} devices failed ({done} finished): {first.error}",
                          hint=first.hint if len(failed) == 1 else "each device's reason is listed above")
    return outcomes


def _summary(outcomes, console) -> None:
    for o in outcomes:
        where = f" -> {o.path}" if o.path else ""
        if o.status == "done":
            console.print(f"[green]done[/]    {escape(o.device.name)}{escape(where)}", highlight=False, soft_wrap=True)
        elif o.status == "skipped":
            console.print(f"[cyan]skipped[/] {escape(o.device.name)}: already measured{escape(where)} (delete it to measure again)",
                          highlight=False, soft_wrap=True)
        else:
            hint = f" ({o.hint})" if o.hint else ""
            console.print(f"[red]{o.status}[/]  {escape(o.error or o.device.name)}[dim]{escape(hint)}[/]",
                          highlight=False, soft_wrap=True)


def profile(path: Path, params: dict, forwarded: list[str], out, err) -> None:
    """Profile PATH on each device; each device's JSON lands in the output folder as it arrives."""
    if not path.exists():
        from edge.core.errors import InputNotFoundError

        raise InputNotFoundError(f"no such bundle or model file: {path}")
    devices = devices_of(params)
    out_dir = params.get("output") or Path(f"profile-{path.stem if path.is_file() else path.name}")
    if out_dir.is_file():
        raise UsageError(f"{out_dir} is a file", hint="with --device or --fleet, -o names a folder (one JSON per device)")
    input_path = params.get("input_path")

    def job(session) -> bytes:
        bundle = session.push(path)
        remote_json = session.scratch(f"{uuid.uuid4().hex}.json")
        argv = ["profile", bundle, "-o", remote_json, *forwarded]
        if input_path:
            argv += ["--input", session.push(input_path)]
        if session.device.target and "--target" not in forwarded:
            argv += ["--target", session.device.target]
        done = session.edge(argv, on_stderr=session.progress)
        if done.returncode != 0:
            raise DeviceError(f"{session.device.name}: edge profile failed there (exit {done.returncode}): {last_line(done.stderr)}")
        data = session.fetch(remote_json)
        _check_profile(data, session.device)
        return data

    err.print(f"profiling {path} on {len(devices)} device(s); results in {out_dir}/", highlight=False, soft_wrap=True)
    _run(devices, job, _run_options("profile", params, out_dir, _lines(err)), out, err)


def tune(bundle: Path, params: dict, forwarded: list[str], out, err) -> None:
    """``edge tune`` on each device; each device's table and tuned choice come back into BUNDLE."""
    import threading

    from edge.core.bundle import read_manifest

    read_manifest(bundle)  # a missing or damaged bundle fails here, before any connection
    devices = devices_of(params)
    lock = threading.Lock()

    def job(session) -> None:
        remote = session.push(bundle)
        argv = ["tune", remote, *forwarded]
        done = session.edge(argv, on_stdout=_prefixed(session.device, out), on_stderr=session.progress)
        if done.returncode != 0:
            raise DeviceError(f"{session.device.name}: edge tune failed there (exit {done.returncode}): {last_line(done.stderr)}")
        manifest = session.fetch(f"{remote}/manifest.json")
        with lock:  # devices finish in any order; each adds its own target's choice
            merge_tuned(bundle, manifest, lambda name: session.fetch(f"{remote}/{name}"), session.device)
        return None

    err.print(f"tuning {bundle} on {len(devices)} device(s)", highlight=False, soft_wrap=True)
    _run(devices, job, _run_options("tune", params, None, _lines(err)), out, err)


def merge_tuned(bundle: Path, data: bytes, fetch, device: Device) -> None:
    """Take the device's tuned choices (and their tables, read by ``fetch(name)``) into the local bundle."""
    from edge.core import schema
    from edge.core.bundle import Manifest, check, read_manifest, write_manifest
    from edge.core.errors import ConfigError
    from edge.core.files import write_atomic

    try:
        theirs = schema.load(Manifest, json.loads(data.decode("utf-8")), f"{device.name}:manifest.json")
        check(theirs, f"{device.name}:manifest.json")
    except (UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
        raise DeviceError(f"{device.name}: the manifest that came back is not valid ({exc})") from exc
    ours = read_manifest(bundle)
    if [a.sha256 for a in theirs.artifacts] != [a.sha256 for a in ours.artifacts]:
        raise DeviceError(f"{device.name}: the bundle there holds other artifacts than {bundle}")
    for tuned in theirs.tuned:
        write_atomic(bundle / tuned.table, fetch(tuned.table))
        ours.tuned = [t for t in ours.tuned if t.target != tuned.target] + [tuned]
    write_manifest(bundle, ours)


def run(bundle: Path, params: dict, forwarded: list[str], out, err) -> None:
    """``edge run`` on each device; its output is streamed (prefixed by the device when there are several)."""
    if not bundle.exists():
        from edge.core.errors import InputNotFoundError

        raise InputNotFoundError(f"no such bundle or model file: {bundle}")
    if params.get("save"):
        raise UsageError("--save is not supported with --device or --fleet", hint="run on one device and copy the .npz back with scp")
    devices = devices_of(params)
    input_path = params.get("input_path")
    single = len(devices) == 1

    def job(session) -> None:
        remote = session.push(bundle)
        argv = ["run", remote, *forwarded]
        if input_path:
            argv += ["--input", session.push(input_path)]
        if session.device.target and "--target" not in forwarded:
            argv += ["--target", session.device.target]
        stream = _passthrough if single else _prefixed(session.device, out)
        done = session.edge(argv, on_stdout=stream, on_stderr=session.progress)
        if done.returncode != 0:
            raise DeviceError(f"{session.device.name}: edge run failed there (exit {done.returncode}): {last_line(done.stderr)}")
        return None

    _run(devices, job, _run_options("run", params, None, _lines(err)), err, err)


def detect(params: dict, as_json: bool, out, err) -> None:
    """``edge detect --json`` on each device: one line each (or one JSON object keyed by device)."""
    devices = devices_of(params)
    found: dict[str, dict] = {}

    def job(session) -> bytes:
        done = session.edge(["detect", "--json"], on_stderr=session.progress)
        if done.returncode != 0:
            raise DeviceError(f"{session.device.name}: edge detect failed there (exit {done.returncode}): {last_line(done.stderr)}")
        found[session.device.name] = json.loads(done.stdout.decode("utf-8"))
        return None

    outcomes = _run(devices, job, _run_options("detect", params, None, _lines(err)), err, err)
    if as_json:
        out.print_json(json.dumps(found))
        return
    for o in outcomes:
        d = found.get(o.device.name)
        if d is None:
            continue
        declared = o.device.target
        note = f"  [yellow](the fleet file says {declared})[/]" if declared and declared != d["target"] else ""
        out.print(f"{escape(o.device.name)}: [bold]{escape(d['target'])}[/] {escape(d['arch'])}, {escape('; '.join(d['reasons']))}{note}",
                  highlight=False, soft_wrap=True)


def _check_profile(data: bytes, device: Device) -> None:
    from edge.device.profiler.result import SCHEMA

    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeviceError(f"{device.name}: the result that came back is not JSON ({exc})") from exc
    if doc.get("schema") != SCHEMA:
        raise DeviceError(f"{device.name}: the result that came back has schema {doc.get('schema')!r}, not {SCHEMA}")


def _passthrough(block: bytes) -> None:
    sys.stdout.buffer.write(block)
    sys.stdout.flush()


def _prefixed(device: Device, console):
    pending = bytearray()

    def write(block: bytes) -> None:
        pending.extend(block)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            console.print(f"[dim]{escape(device.name)}>[/] {escape(line.decode('utf-8', 'replace'))}", highlight=False, soft_wrap=True)

    return write
