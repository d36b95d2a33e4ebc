"""Which builtin ops (and versions) a .tflite file uses, and whether an interpreter runs them.

Read from the flatbuffer with the schema module ai-edge-litert ships (no TensorFlow). The
limits are what was measured, not guessed: tflite-runtime 2.14 refuses FULLY_CONNECTED v12
and GATHER_ND v5, which current converters write (docs/tflite-research.md). An op missing
from the table is not known to be a problem.
"""

from __future__ import annotations

from pathlib import Path

# runtime -> {op: highest version it is known to run}
KNOWN_LIMITS: dict[str, dict[str, int]] = {
    "tflite-runtime": {"FULLY_CONNECTED": 11, "GATHER_ND": 4},
}


def read_ops(path: Path) -> list[list]:
    """[[op name, version], ...] of a .tflite file, in the file's order."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = f"CUSTOM:{code.CustomCode().decode()}"
        ops.append([name, code.Version()])
    return ops


def unsupported(ops: list[list], runtime: str) -> list[str]:
    """The ops (as 'NAME vN') that ``runtime`` is known not to run."""
    limits = KNOWN_LIMITS.get(runtime, {})
    return [f"{name} v{version}" for name, version in ops if version > limits.get(name, version)]
