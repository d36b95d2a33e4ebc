"""Remote devices: ``ssh://user@host[:port]`` on the command line, or a fleet file.

A fleet file names devices and, optionally, their targets (so results are labelled by
target without detecting it there), the edge to use on them and their timeouts::

    ssh_config = "~/.ssh/config"    # optional: the ssh_config(5) file to read

    [[device]]
    name = "kitchen-pi"             # results go to kitchen-pi.json
    url = "ssh://pi@192.168.1.20"
    target = "rpi4"                 # optional: otherwise the device detects itself
    edge = "~/edge/bin/edge"        # optional: where edge is installed there
    timeout = 1800                  # optional: seconds for the whole job on this device

It is read with the same strict schema as targets and profiles: an unknown key is an error.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge.core import schema
from edge.core.errors import ConfigError, InputNotFoundError, UsageError

# A host or user that could be read as an ssh option, or carries shell or URL syntax, is refused.
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]*$|^\[[0-9A-Fa-f:.]+\]$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]*$")


@dataclass(frozen=True)
class Device:
    url: str
    host: str
    user: str | None = None
    port: int | None = None
    name: str = ""  # file-safe; results are written as NAME.json
    target: str | None = None  # declared in a fleet file; None: detected on the device
    edge: str | None = None  # the edge command there; None: looked for (see remote.session)
    timeout_s: float | None = None
    ssh_config: Path | None = None

    @staticmethod
    def parse(url: str, **fields) -> "Device":
        """``ssh://user@host[:port]`` (user and port optional) into a Device.

        >>> Device.parse("ssh://pi@10.0.0.7:2222").name
        'pi@10.0.0.7_2222'
        """
        parts = urlsplit(url)
        hint = "write ssh://user@host or ssh://user@host:port"
        if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"bad device '{url}'", hint=hint)
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"bad port in device '{url}'", hint=hint) from exc
        if not _HOST.match(host) or (parts.username and not _USER.match(parts.username)) or parts.password:
            raise UsageError(f"bad device '{url}': unexpected characters in the user or host", hint=hint)
        name = fields.pop("name", None) or re.sub(r"[^A-Za-z0-9._@-]", "_", f"{parts.username + '@' if parts.username else ''}{host}{'_' + str(port) if port else ''}")
        return Device(url, host.strip("[]"), parts.username, port, name, **fields)


@dataclass(frozen=True)
class FleetDevice:
    url: str
    name: str | None = None
    target: str | None = None
    edge: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class FleetFile:
    device: list[FleetDevice]
    ssh_config: str | None = None


def load_fleet(path: Path) -> list[Device]:
    """The devices of a fleet file, checked against the schema; names must be unique."""
    from edge.core import catalog

    if not path.is_file():
        raise InputNotFoundError(f"no such fleet file: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    fleet = schema.load(FleetFile, data, str(path))
    config = Path(fleet.ssh_config).expanduser() if fleet.ssh_config else None
    devices = []
    for entry in fleet.device:
        if entry.target is not None:
            catalog.load_target(entry.target)  # an unknown target fails here, with "did you mean"
        if entry.name is not None and not re.match(r"^[A-Za-z0-9._@-]+$", entry.name):
            raise ConfigError(f"{path}: device name '{entry.name}' may hold only letters, digits and . _ @ -")
        devices.append(Device.parse(entry.url, name=entry.name, target=entry.target, edge=entry.edge,
                                    timeout_s=entry.timeout, ssh_config=config))
    return unique(devices, str(path))


def unique(devices: list[Device], where: str) -> list[Device]:
    names = [d.name for d in devices]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: device names must be unique, {', '.join(twice)} appears more than once")
    if not devices:
        raise ConfigError(f"{where}: no devices")
    return devices
