"""Bundles the emulated Pi lane runs, exported on the host (the device install cannot export).

    python tests/arm64/host_bundles.py OUT rpi4 rpi5

writes OUT/<target>/{digits, digits-all, lm}: the digits CNN with ONNX artifacts only (what the
suite's ``digits_bundle`` fixture holds), the digits CNN with every format, and a tiny random
Llama with its int8-weights variant (what ``tiny_lm`` holds). The tests find them through
EDGE_HOST_BUNDLES=OUT. A folder that is already there is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

from edge.cli import main  # noqa: E402
from llm_models import save  # noqa: E402

DIGITS = f"{HERE.parents[1] / 'examples/digits/model.py'}:create"


def export(args: list[str], out: Path) -> None:
    if (out / "manifest.json").is_file():
        return
    done = CliRunner().invoke(main, ["export", *args, "-o", str(out), "--force"])
    if done.exit_code != 0:
        raise SystemExit(f"export to {out} failed:\n{done.output}")
    print(f"exported {out}", flush=True)


def build(out: Path, targets: list[str]) -> None:
    llama = out / "llama-source"
    if not (llama / "config.json").is_file():
        save("llama", llama)
    for target in targets:
        export([DIGITS, "-t", target, "--format", "onnx"], out / target / "digits")
        export([DIGITS, "-t", target], out / target / "digits-all")
        export([str(llama), "-t", target, "--variant", "int8-weights"], out / target / "lm")


if __name__ == "__main__":
    build(Path(sys.argv[1]), sys.argv[2:])
