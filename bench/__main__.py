"""Run every benchmark section (or the ones named): ``python -m bench [section ...]``.

Each section prints its tables and writes ``bench-results/<section>.json`` with the machine
it ran on. Figures in the README come from these files.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

SECTIONS = ("quantization", "runtime", "conformance", "profiler", "llm", "tune", "mutation")
OUT = Path(__file__).resolve().parent.parent / "bench-results"


def machine() -> dict:
    from edge.device.detect import read_facts

    facts = read_facts("/")
    return {"cpu": facts.cpu_model, "cores": os.cpu_count(), "memory_mb": facts.memory_mb, "arch": platform.machine(),
            "python": platform.python_version(), "flags": sorted(f for f in facts.flags if f.startswith(("avx", "amx")))}


def main(names: list[str]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console()
    OUT.mkdir(exist_ok=True)
    here = machine()
    console.print(f"machine: {here['cpu']}, {here['cores']} cores, {here['memory_mb']} MB", highlight=False)
    for name in names or SECTIONS:
        module = importlib.import_module(f"bench.{name}")
        with console.status(f"benchmark: {name}"):
            result = module.run()
        result.update(machine=here, date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        for item in module.table(result):
            console.print(item)
        console.print(f"wrote {OUT / f'{name}.json'}", style="dim")


if __name__ == "__main__":
    main(sys.argv[1:])
