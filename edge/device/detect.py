"""Which target is this machine, and why.

Everything is read below a root folder (``/`` on a real device) so tests can feed trees
recorded on a Raspberry Pi, a mini PC or a phone: /proc/cpuinfo, /proc/device-tree/model
(or /sys/firmware/devicetree/base/model), /proc/meminfo and
/sys/devices/system/cpu/cpuN/{cpu_capacity,cpufreq/cpuinfo_max_freq}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edge.core import catalog
from edge.core.errors import UnknownTargetError
from edge.core.sysfs import read_int, read_text


@dataclass(frozen=True)
class Core:
    index: int
    part: str | None = None  # ARM "CPU part", e.g. 0xd08 for Cortex-A72
    capacity: int | None = None  # Linux cpu_capacity (1024 = the fastest core)
    max_freq_khz: int | None = None


@dataclass(frozen=True)
class MachineFacts:
    arch: str
    board: str | None  # /proc/device-tree/model
    cpu_model: str | None  # x86 "model name" (or ARM "Hardware")
    flags: frozenset[str]
    cores: tuple[Core, ...]
    memory_mb: int | None

    @property
    def heterogeneous(self) -> bool:
        """True on big.LITTLE: cores differ in part, capacity or top frequency."""
        for attr in ("part", "capacity", "max_freq_khz"):
            values = {getattr(c, attr) for c in self.cores} - {None}
            if len(values) > 1:
                return True
        return False

    def big_cores(self) -> list[int]:
        """Indices of the fastest cores (all of them on a homogeneous machine)."""
        def speed(c: Core) -> int:
            return c.capacity or c.max_freq_khz or 0
        top = max((speed(c) for c in self.cores), default=0)
        return [c.index for c in self.cores if speed(c) == top]


@dataclass(frozen=True)
class Detection:
    target: str
    exact: bool  # False: fell back to a generic target
    reasons: list[str]
    note: str | None
    facts: MachineFacts
    rejected: dict[str, str] = field(default_factory=dict)  # target -> first rule that failed


def read_facts(root: str | Path = "/") -> MachineFacts:
    root = Path(root)
    blocks = _cpuinfo_blocks(read_text(root / "proc/cpuinfo") or "")
    flags: set[str] = set()
    cpu_model = None
    parts: dict[int, str] = {}
    for i, block in enumerate(blocks):
        if "processor" not in block:
            # A trailing block without "processor" carries board-wide lines (old ARM kernels).
            cpu_model = cpu_model or block.get("Hardware")
            continue
        index = int(block["processor"]) if block["processor"].isdigit() else i
        flags.update((block.get("flags") or block.get("Features") or "").split())
        cpu_model = cpu_model or block.get("model name") or block.get("Hardware")
        if "CPU part" in block:
            parts[index] = block["CPU part"].lower()
    arch = _arch(blocks)
    indices = sorted(parts) or [int(b["processor"]) for b in blocks if b.get("processor", "").isdigit()]
    indices = indices or _sys_cpus(root)
    cores = tuple(
        Core(
            index=i,
            part=parts.get(i),
            capacity=read_int(root / f"sys/devices/system/cpu/cpu{i}/cpu_capacity"),
            max_freq_khz=read_int(root / f"sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq"),
        )
        for i in indices
    )
    # /proc/device-tree is a link to the firmware's tree in sysfs; read either (a container or an
    # emulated board may have one without the other).
    board = read_text(root / "proc/device-tree/model") or read_text(root / "sys/firmware/devicetree/base/model")
    meminfo = read_text(root / "proc/meminfo") or ""
    mem = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.M)
    return MachineFacts(
        arch=arch,
        board=board or None,
        cpu_model=cpu_model,
        flags=frozenset(flags),
        cores=cores,
        memory_mb=int(mem.group(1)) // 1024 if mem else None,
    )


def detect(root: str | Path = "/") -> Detection:
    """The target this machine (or the recorded tree under ``root``) belongs to."""
    facts = read_facts(root)
    targets = [catalog.load_target(n) for n in catalog.target_names()]
    matched: list[tuple[int, catalog.Target, list[str]]] = []
    rejected: dict[str, str] = {}
    for target in targets:
        ok, reasons, score = _match(target.detect, facts)
        if ok:
            matched.append((score, target, reasons))
        elif target.arch == facts.arch:
            rejected[target.name] = reasons[-1]
    if not matched:
        raise UnknownTargetError(
            f"no target for this machine (architecture {facts.arch or 'unknown'})",
            hint="pass --target NAME explicitly; see 'edge targets list'",
        )
    score, target, reasons = max(matched, key=lambda m: (m[0], not m[1].generic))
    note = None
    if target.generic:
        detail = "; ".join(f"{n}: {why}" for n, why in sorted(rejected.items()))
        note = f"no specific target matched, using the generic '{target.name}' ({detail})"
    return Detection(target.name, not target.generic, reasons, note, facts, rejected)


def _match(rule: catalog.DetectRule, facts: MachineFacts) -> tuple[bool, list[str], int]:
    """(matched, reasons — the last one is the failure when not matched, specificity)."""
    reasons: list[str] = []
    if rule.arch != facts.arch:
        return False, [f"architecture is {facts.arch}, not {rule.arch}"], 0
    reasons.append(f"architecture {facts.arch}")
    checks = []
    if rule.device_tree:
        board = facts.board or ""
        hit = next((m for m in rule.device_tree if m in board), None)
        checks.append((hit, f"device-tree model '{board}'", f"device-tree model '{board or '(none)'}' is not {' or '.join(rule.device_tree)}"))
    if rule.cpu_parts:
        found = sorted({c.part for c in facts.cores if c.part})
        hit = next((p for p in found if p in rule.cpu_parts), None)
        checks.append((hit, f"CPU part {hit}", f"CPU parts {found or '(none)'} are not {rule.cpu_parts}"))
    if rule.model_name:
        model = facts.cpu_model or ""
        hit = next((m for m in rule.model_name if re.search(rf"\b{re.escape(m)}", model)), None)
        checks.append((hit, f"CPU model '{model}'", f"CPU model '{model}' is none of this class"))
    if rule.flags_all:
        missing = [f for f in rule.flags_all if f not in facts.flags]
        checks.append((not missing, f"CPU flags {' '.join(rule.flags_all)}", f"CPU lacks {' '.join(missing)}"))
    if rule.flags_none:
        present = [f for f in rule.flags_none if f in facts.flags]
        checks.append((not present, f"no {' '.join(rule.flags_none)}", f"CPU has {' '.join(present)}"))
    if rule.heterogeneous is not None:
        kind = "big.LITTLE" if facts.heterogeneous else "identical cores"
        checks.append((rule.heterogeneous == facts.heterogeneous, f"{kind} ({_cluster_summary(facts)})", f"cores are {kind}"))
    for hit, why, why_not in checks:
        if not hit:
            return False, reasons + [why_not], 0
        reasons.append(why)
    return True, reasons, len(checks)


def _cluster_summary(facts: MachineFacts) -> str:
    groups: dict[tuple, int] = {}
    for c in facts.cores:
        key = (c.part, c.capacity, c.max_freq_khz)
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(
        f"{n}x " + "/".join(str(v) for v in (p, cap and f"capacity {cap}", f and f"{f // 1000} MHz") if v)
        for (p, cap, f), n in sorted(groups.items(), key=lambda kv: str(kv[0]))
    )


def _arch(blocks: list[dict[str, str]]) -> str:
    for block in blocks:
        if "vendor_id" in block or "flags" in block:
            return "x86_64"
        if block.get("CPU architecture") in ("8", "AArch64"):
            return "aarch64"
        if block.get("CPU architecture") == "7":
            return "armv7l"
    return ""


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks = []
    for chunk in re.split(r"\n\s*\n", text):
        block = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                block[key.strip()] = value.strip()
        if block:
            blocks.append(block)
    return blocks


def _sys_cpus(root: Path) -> list[int]:
    base = root / "sys/devices/system/cpu"
    found = [int(p.name[3:]) for p in base.glob("cpu[0-9]*")] if base.is_dir() else []
    return sorted(found)
