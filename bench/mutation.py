"""Mutation score of the modules whose answers are numbers: does a one-line bug make a fast test fail?

``python -m bench.mutation [gate repair ...] [--jobs N] [--max N] [--tests-at REV] [--min-score P] [-o FILE]``, or
``python -m bench mutation`` as a benchmark section. Mutants are made from each module's syntax tree,
one edit each: comparison swaps (< <= > >=, == !=, is/is not, in/not in), arithmetic swaps, ``and``/``or``,
``min``/``max``, ``any``/``all``, ``mean``/``median``, numeric constants off by one (ints) or x1000
(floats), a returned boolean negated, a dropped ``not`` or unary minus, a ``break``/``continue`` removed.
Docstrings, annotations and f-strings are left alone.

Each mutant is written into a private copy of the package (the working tree is never written, so
other people's test runs never see a mutant; Ctrl-C or a kill removes the copies), and the module's
fast unit tests run against it with ``-x``, no plugins and a timeout. A mutant is killed when the
tests fail or time out, and survives when they pass. The score is (killed + timed out) / mutants.
Every survivor goes to bench-results/mutation.json with its file, line, original and mutated text:
either a test is missing or the mutant is equivalent (docs/testing.md lists the known equivalent ones).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent

# module -> its fast unit tests (no model export; the whole list runs in about a second)
MODULES: dict[str, list[str]] = {
    "edge/build/gate.py": ["tests/test_gate.py"],
    "edge/build/repair.py": ["tests/test_repair.py"],
    "edge/build/validate.py": ["tests/test_validate.py"],
    "edge/core/bundle.py": ["tests/test_bundle.py"],
    # Not test_profiler.py::test_stats_and_the_timing_loop: its timing-loop half sleeps and counts calls, and
    # under load it fails now and then, which would count a mutant as killed by chance.
    "edge/device/profiler/stats.py": ["tests/test_stats.py"],
}
MAX_PER_MODULE = 200  # beyond this, an evenly spaced (deterministic) subset
TIMEOUT_FLOOR_S = 20.0  # per mutant; or 5x the unmutated run, whichever is longer

_COMPARE = {ast.Lt: ("<", ["<=", ">"]), ast.LtE: ("<=", ["<", ">="]), ast.Gt: (">", [">=", "<"]),
            ast.GtE: (">=", [">", "<="]), ast.Eq: ("==", ["!="]), ast.NotEq: ("!=", ["=="]),
            ast.Is: ("is", ["is not"]), ast.IsNot: ("is not", ["is"]), ast.In: ("in", ["not in"]),
            ast.NotIn: ("not in", ["in"])}
_BINARY = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"),
           ast.FloorDiv: ("//", "/"), ast.Mod: ("%", "/"), ast.Pow: ("**", "*"), ast.LShift: ("<<", ">>"),
           ast.RShift: (">>", "<<")}
_SWAPS = {"min": "max", "max": "min", "mean": "median", "median": "mean", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutant:
    file: str
    line: int
    kind: str
    original: str  # the line(s) as written
    mutated: str  # the same line(s) with the mutation


@dataclass
class _Edit:
    start: int  # byte offsets into the module's source
    end: int
    text: str
    kind: str
    line: int
    end_line: int


# -- generating mutants ------------------------------------------------------------------------------------------


def mutants(file: str, source: str) -> list[tuple[Mutant, str]]:
    """Every one-line mutant of ``source`` as (description, whole mutated source), in source order."""
    data = source.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    tree = ast.parse(source)
    original_dump = ast.dump(tree)
    lines = source.splitlines()
    seen, found = set(), []
    for edit in sorted(_edits(tree, data, starts), key=lambda e: (e.start, e.end, e.kind, e.text)):
        new = (data[:edit.start] + edit.text.encode() + data[edit.end:]).decode()
        try:
            changed = ast.dump(ast.parse(new)) != original_dump
        except SyntaxError:
            continue
        if not changed or new in seen:
            continue
        seen.add(new)
        new_lines = new.splitlines()
        span = edit.end_line - edit.line
        original = " / ".join(s.strip() for s in lines[edit.line - 1:edit.end_line])
        mutated = " / ".join(s.strip() for s in new_lines[edit.line - 1:edit.line + span - _lost_lines(edit, data)])
        found.append((Mutant(file, edit.line, edit.kind, original, mutated), new))
    return found


def _lost_lines(edit: _Edit, data: bytes) -> int:
    return data[edit.start:edit.end].count(b"\n") - edit.text.count("\n")


def _skipped(tree: ast.AST) -> set[int]:
    """ids of nodes never worth mutating: docstrings, annotations, f-strings (log and error text)."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            drop(first)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            drop(node.returns)
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                drop(arg.annotation)
        elif isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            drop(node)
    return skip


def _edits(tree: ast.AST, data: bytes, starts: list[int]) -> Iterator[_Edit]:
    mutator = _Mutator(tree, data, starts)
    skip = _skipped(tree)
    for node in ast.walk(tree):
        handler = getattr(mutator, f"on_{type(node).__name__}", None)
        if handler is not None and id(node) not in skip:
            yield from handler(node)


class _Mutator:
    """One ``on_<NodeType>`` method per kind of node worth mutating; each yields the edits for that node."""

    def __init__(self, tree: ast.AST, data: bytes, starts: list[int]) -> None:
        self.data, self.starts = data, starts
        self.numpy = any(isinstance(n, ast.alias) and n.name == "numpy" and n.asname == "np" for n in ast.walk(tree))

    def pos(self, node: ast.AST) -> tuple[int, int]:
        return (self.starts[node.lineno - 1] + node.col_offset,
                self.starts[node.end_lineno - 1] + node.end_col_offset)

    def text(self, node: ast.AST) -> str:
        s, e = self.pos(node)
        return self.data[s:e].decode()

    def edit(self, node: ast.AST, text: str, kind: str, start: int | None = None, end: int | None = None) -> _Edit:
        s, e = self.pos(node)
        return _Edit(s if start is None else start, e if end is None else end, text, kind, node.lineno, node.end_lineno)

    def between(self, left: ast.AST, right: ast.AST, op: str, new: str, kind: str, node: ast.AST) -> Iterator[_Edit]:
        """Swap the operator written between two operands (the gap may hold parentheses and spaces)."""
        s, e = self.pos(left)[1], self.pos(right)[0]
        gap = self.data[s:e].decode()
        if gap.replace("(", " ").replace(")", " ").replace("\\\n", " ").split() != op.split():
            return  # a comment in the gap, or an operator this cannot see: no mutant rather than a wrong one
        at = gap.index(op.split()[0])
        stop = gap.index(op.split()[-1], at) + len(op.split()[-1])
        yield self.edit(node, new, kind, s + at, s + stop)

    def on_Compare(self, node: ast.Compare) -> Iterator[_Edit]:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            written, news = _COMPARE[type(op)]
            for new in news:
                yield from self.between(operands[i], operands[i + 1], written, new, f"compare {written} -> {new}", node)

    def on_BinOp(self, node: ast.BinOp) -> Iterator[_Edit]:
        if type(node.op) in _BINARY:
            written, new = _BINARY[type(node.op)]
            yield from self.between(node.left, node.right, written, new, f"arithmetic {written} -> {new}", node)

    def on_AugAssign(self, node: ast.AugAssign) -> Iterator[_Edit]:
        if type(node.op) in _BINARY:
            written, new = _BINARY[type(node.op)]
            yield from self.between(node.target, node.value, written + "=", new + "=",
                                    f"arithmetic {written}= -> {new}=", node)

    def on_BoolOp(self, node: ast.BoolOp) -> Iterator[_Edit]:
        written, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in zip(node.values, node.values[1:]):
            yield from self.between(left, right, written, new, f"boolean {written} -> {new}", node)

    def on_UnaryOp(self, node: ast.UnaryOp) -> Iterator[_Edit]:
        if isinstance(node.op, ast.Not):
            yield self.edit(node, f"({self.text(node.operand)})", "drop not")
        elif isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            yield self.edit(node, f"({self.text(node.operand)})", "drop unary minus")  # -key -> key: a sort reversed

    def on_Name(self, node: ast.Name) -> Iterator[_Edit]:
        if node.id in ("min", "max", "any", "all") and isinstance(node.ctx, ast.Load):
            yield self.edit(node, _SWAPS[node.id], f"{node.id} -> {_SWAPS[node.id]}")

    def on_Attribute(self, node: ast.Attribute) -> Iterator[_Edit]:
        on_numpy = isinstance(node.value, ast.Name) and node.value.id == "np"
        if node.attr in ("min", "max") or (node.attr in ("mean", "median") and on_numpy):
            yield self.edit(node, self.text(node)[: -len(node.attr)] + _SWAPS[node.attr],
                            f".{node.attr} -> .{_SWAPS[node.attr]}")

    def on_Call(self, node: ast.Call) -> Iterator[_Edit]:
        func = node.func
        if self.numpy and isinstance(func, ast.Attribute) and func.attr == "mean" and not node.args \
                and not node.keywords and not (isinstance(func.value, ast.Name) and func.value.id == "np"):
            # x.mean() -> np.median(x): ndarray has no .median()
            yield self.edit(node, f"np.median({self.text(func.value)})", "x.mean() -> np.median(x)")

    def on_Constant(self, node: ast.Constant) -> Iterator[_Edit]:
        if type(node.value) in (int, float):
            for value in _numbers(node.value):
                yield self.edit(node, repr(value), f"number {node.value!r} -> {value!r}")
        elif isinstance(node.value, bool):
            yield self.edit(node, repr(not node.value), f"{node.value} -> {not node.value}")

    def on_Return(self, node: ast.Return) -> Iterator[_Edit]:
        if node.value is not None and _boolean(node.value):
            yield self.edit(node.value, f"not ({self.text(node.value)})", "negate returned boolean")

    def on_Break(self, node: ast.stmt) -> Iterator[_Edit]:
        yield self.edit(node, "pass", f"remove {type(node).__name__.lower()}")

    on_Continue = on_Break


def _numbers(value: int | float) -> list[int | float]:
    if isinstance(value, int):
        return [value + 1, value - 1] if value else [1]
    return [value * 1000] if value else [1.0]


def _boolean(node: ast.AST) -> bool:
    """A return value that is visibly a truth value."""
    if isinstance(node, (ast.Compare, ast.BoolOp)) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return False  # the constant mutator already flips it
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
        and node.func.id in ("all", "any", "bool", "isinstance")


def select(found: list, limit: int) -> list:
    """At most ``limit`` of ``found``, evenly spaced over the module (deterministic)."""
    if len(found) <= limit:
        return found
    return [found[i * len(found) // limit] for i in range(limit)]


# -- running them ------------------------------------------------------------------------------------------------


class _Copy:
    """A private copy of the package and its tests, where mutants are written and undone."""

    def __init__(self, tests: list[str], mutated: list[str], tests_at: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="edge-mutation-"))
        try:
            self._fill(tests, mutated, tests_at)
        except BaseException:  # Ctrl-C while copying: leave nothing behind
            self.close()
            raise

    def _fill(self, tests: list[str], mutated: list[str], tests_at: str | None) -> None:
        files = sorted({t.split("::")[0] for t in tests})
        shutil.copytree(ROOT / "edge", self.root / "edge", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(ROOT / "pyproject.toml", self.root / "pyproject.toml")
        (self.root / "tests").mkdir()
        for name in ("tests/conftest.py", *files):
            if tests_at is None and (ROOT / name).is_file():
                shutil.copy2(ROOT / name, self.root / name)
            elif tests_at is not None:  # the tests as they were at a git revision, to score them against today's code
                done = subprocess.run(["git", "show", f"{tests_at}:{name}"], cwd=ROOT, capture_output=True, check=False)
                if done.returncode == 0:
                    (self.root / name).write_bytes(done.stdout)
        # Plugins off: pytest starts in a third of the time, and these tests need none.
        self.env = {**os.environ, "PYTHONPATH": str(self.root), "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "HF_HUB_OFFLINE": "1"}
        self._warm([f for f in files if (self.root / f).is_file()], mutated)

    def _warm(self, tests: list[str], mutated: list[str]) -> None:
        """Byte-compile the copy once (edge, and pytest's rewrite of the tests), then drop the .pyc of each
        module that will be mutated: with no bytecode written from then on, a mutant always runs from its source."""
        env = {k: v for k, v in self.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        quiet = {"cwd": self.root, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run([sys.executable, "-m", "compileall", "-q", "edge"], check=True, **quiet)
        if tests:
            subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *tests], **quiet)
        for file in mutated:
            for pyc in (self.root / file).parent.glob(f"__pycache__/{Path(file).stem}.*.pyc"):
                pyc.unlink()

    def check_import(self) -> None:
        done = subprocess.run([sys.executable, "-c", "import edge; print(edge.__file__)"], cwd=self.root, env=self.env,
                              capture_output=True, text=True, check=True)
        if not done.stdout.strip().startswith(str(self.root)):
            raise RuntimeError(f"the copy does not shadow the installed edge: {done.stdout.strip()}")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _Runner:
    def __init__(self) -> None:
        self.live: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def pytest(self, copy: _Copy, tests: list[str], timeout: float) -> str:
        """'passed', 'failed', 'timeout' or 'no tests' for the copy as it now is."""
        present = [t for t in tests if (copy.root / t.split("::")[0]).is_file()]
        if not present:
            return "no tests"
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *present]
        proc = subprocess.Popen(cmd, cwd=copy.root, env=copy.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with self.lock:
            self.live.add(proc)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "timeout"
        finally:
            with self.lock:
                self.live.discard(proc)
        return {0: "passed", 5: "no tests"}.get(code, "failed")

    def kill_all(self) -> None:
        self.stopping.set()
        with self.lock:
            for proc in self.live:
                proc.kill()


def _worker(runner: _Runner, copy: _Copy, jobs: queue.Queue, results: dict, timeouts: dict[str, float]) -> None:
    while not runner.stopping.is_set():
        try:
            index, mutant, source = jobs.get_nowait()
        except queue.Empty:
            return
        path = copy.root / mutant.file
        original = path.read_bytes()
        try:
            path.write_text(source, encoding="utf-8")
            outcome = runner.pytest(copy, MODULES[mutant.file], timeouts[mutant.file])
        finally:
            path.write_bytes(original)  # the copy's module as it was, whatever happened
        results[index] = outcome


def run(names: list[str] | None = None, jobs: int | None = None, limit: int = MAX_PER_MODULE,
        tests_at: str | None = None) -> dict:
    """Mutate the modules (all, or those whose path contains one of ``names``) and run their tests on each mutant.

    ``tests_at`` takes the test files from that git revision instead of the working tree."""
    started = time.monotonic()
    modules = [m for m in MODULES if not names or any(n in m for n in names)]
    jobs = jobs or max(1, min(2, os.cpu_count() or 1))
    runner = _Runner()
    plan: list[tuple[Mutant, str]] = []
    generated: dict[str, int] = {}
    for file in modules:
        found = mutants(file, (ROOT / file).read_text(encoding="utf-8"))
        generated[file] = len(found)
        plan += select(found, limit)
    copies = []
    try:
        for _ in range(jobs):
            copies.append(_Copy([t for m in modules for t in MODULES[m]], modules, tests_at))
        copies[0].check_import()
        baseline, timeouts = {}, {}
        for file in modules:  # the unmutated module must pass its tests, or every mutant would look killed
            t0 = time.monotonic()
            baseline[file] = runner.pytest(copies[0], MODULES[file], 120.0)
            timeouts[file] = max(TIMEOUT_FLOOR_S, 5 * (time.monotonic() - t0))
            if baseline[file] == "failed":
                raise RuntimeError(f"the tests of {file} fail without any mutant: {' '.join(MODULES[file])}")
        work: queue.Queue = queue.Queue()
        for i, (mutant, source) in enumerate(plan):
            work.put((i, mutant, source))
        results: dict[int, str] = {}
        threads = [threading.Thread(target=_worker, args=(runner, c, work, results, timeouts), daemon=True)
                   for c in copies]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            runner.kill_all()
            for t in threads:
                t.join()
            raise
    finally:
        for c in copies:
            c.close()
    result = _summarise(modules, generated, plan, results, baseline, timeouts, jobs, time.monotonic() - started)
    result["tests_at"] = tests_at or "working tree"
    return result


def _summarise(modules, generated, plan, results, baseline, timeouts, jobs, seconds) -> dict:
    per: dict[str, dict] = {}
    survivors = []
    for file in modules:
        outcomes = [(m, results[i]) for i, (m, _) in enumerate(plan) if m.file == file]
        count = {k: sum(1 for _, o in outcomes if o == k) for k in ("failed", "passed", "timeout", "no tests")}
        total = len(outcomes)
        killed = count["failed"] + count["timeout"]
        per[file] = {"tests": MODULES[file], "baseline": baseline[file], "generated": generated[file],
                     "mutants": total, "killed": count["failed"], "timed_out": count["timeout"],
                     "survived": count["passed"] + count["no tests"],
                     "score": round(100 * killed / total, 1) if total else None,
                     "timeout_s": round(timeouts[file], 1)}
        survivors += [asdict(m) for m, o in outcomes if o in ("passed", "no tests")]
    return {"modules": per, "survivors": survivors, "seconds": round(seconds, 1), "jobs": jobs,
            "max_per_module": MAX_PER_MODULE}


def table(result: dict):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"mutation score, tests of the {result.get('tests_at', 'working tree')} "
                    f"({result['seconds']:.0f} s, {result['jobs']} jobs)", title_justify="left")
    names = {file: file.removeprefix("edge/") for file in result["modules"]}  # fits 80 columns
    t.add_column("module in edge/", no_wrap=True, min_width=max(map(len, names.values()), default=6))
    for column in ("mutants", "killed", "timeout", "survived", "score %"):
        t.add_column(column, justify="right")
    for file, m in result["modules"].items():
        sampled = f" of {m['generated']}" if m["generated"] > m["mutants"] else ""
        t.add_row(names[file], f"{m['mutants']}{sampled}", str(m["killed"]), str(m["timed_out"]), str(m["survived"]),
                  "-" if m["score"] is None else f"{m['score']:.1f}")
    lines: list = [t]
    lines += [escape(f"  survived: {s['file']}:{s['line']} [{s['kind']}] {s['mutated']}") for s in result["survivors"]]
    return lines


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    from datetime import datetime, timezone

    from rich.console import Console

    from bench.__main__ import OUT, machine

    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="only the modules whose path contains one of these words")
    parser.add_argument("--jobs", type=int, default=None, help="mutants tested at once (default: up to 2)")
    parser.add_argument("--max", type=int, default=MAX_PER_MODULE, help="mutants per module at most")
    parser.add_argument("--tests-at", metavar="REV", help="score the tests of this git revision (e.g. HEAD) instead")
    parser.add_argument("--min-score", type=float, metavar="PERCENT",
                        help="exit 1 when a module scores below this (for CI)")
    parser.add_argument("-o", "--output", type=Path, help="the JSON to write (default bench-results/mutation.json)")
    args = parser.parse_args(argv)
    console = Console()
    signal.signal(signal.SIGTERM, _interrupt)  # a kill cleans up like Ctrl-C does
    try:
        with console.status("mutation testing"):
            result = run(args.modules, args.jobs, args.max, args.tests_at)
    except KeyboardInterrupt:
        console.print("interrupted: the copies are removed, the working tree was never touched")
        sys.exit(130)
    result.update(machine=machine(), date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    out = args.output or OUT / "mutation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for item in table(result):
        console.print(item, highlight=False)
    console.print(f"wrote {out}", style="dim")
    low = [f for f, m in result["modules"].items() if args.min_score is not None and (m["score"] or 0) < args.min_score]
    if low:
        console.print(f"below {args.min_score:g} %: {', '.join(low)}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
