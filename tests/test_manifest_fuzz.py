"""``edge.load`` on damaged manifests: whatever is wrong, the caller gets one of edge's own errors,
and a manifest the schema refuses is an ``InvalidModelError`` that names the key.

The fuzz starts from the real manifest of the digits bundle and applies one to three mutations
anywhere in its JSON tree. The mutator takes its decisions from a ``pick(label, options)``
function, so hypothesis drives it here (reproducibly, with ``derandomize``) and a seeded
``random.Random`` can drive it by hand when hunting::

    rnd = random.Random(0)
    tree = json.loads(text)
    mutate(tree, lambda label, options: rnd.choice(options))
"""

from __future__ import annotations

import json
import math
import shutil
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge
from edge.core.bundle import MANIFEST, read_manifest

CASES = 3000
MAX_FEED = 1 << 22  # elements: a dimension blown up within the schema's limits is not worth allocating

Pick = Callable[[str, list], Any]
Address = tuple  # keys and list indices from the root of the manifest

# Values that take the place of another: every JSON type, and the hostile ones (NaN is not JSON).
ODD_VALUES = [None, True, False, 0, 1, -1, -7, 2**31, 2**62, 2**64, 10**400, 0.5, -2.5, 1e300, "", "x",
              "../../etc/passwd", "/etc/passwd", "a" * 300, [], [1, "a"], [[]], {}, {"name": 1}]
UNKNOWN_WORDS = ["int4", "fp8", "bfloat16", "onnx2", "gguf", "FP32", "onnx ", "riscv64", "None", ""]
PATHS = ["../x.onnx", "../../etc/passwd", "/etc/passwd", "/tmp/model.fp32.onnx", "", ".", "model.fp32.tflite",
         "sub/../model.fp32.onnx", "model.fp32.onnx\x00.txt", "x" * 300 + ".onnx", "~/model.fp32.onnx",
         "model.int8.onnx", "missing.onnx", "manifest.json"]
NEW_KEYS = ["extra", "nmae", "precison", "shape", "__proto__", ""]
ENUM_KEYS = {"precision", "format", "dtype", "layout", "arch", "affinity", "graph_optimization", "kind", "weights",
             "calibration", "activation_type", "weight_type"}
ENUM_LISTS = {"runtimes", "preference", "meters", "preferred"}
MISSING = object()  # in an explicit case: delete the key


def _nodes(tree: Any, at: Address = ()) -> Iterator[tuple[Address, Any]]:
    """(address, value) of every node below ``tree``, depth first."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield at + (key,), value
        yield from _nodes(value, at + (key,))


def _at(tree: Any, address: Address) -> Any:
    for key in address:
        tree = tree[key]
    return tree


def show(address: Address) -> str:
    """An address written the way edge's messages name a key: ``artifacts[0].path``."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in address).lstrip(".")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _replace(tree: dict, pick: Pick, what: str, candidates: list[Address], values: Callable[[Any], list]) -> str | None:
    if not candidates:
        return None
    address = pick(what, candidates)
    old = _at(tree, address)
    new = pick("value", values(old))
    _at(tree, address[:-1])[address[-1]] = new
    return f"{what} {show(address)}: {_short(old)} -> {_short(new)}"


def _delete(tree: dict, pick: Pick) -> str | None:
    address = pick("delete", [a for a, _ in _nodes(tree)])
    del _at(tree, address[:-1])[address[-1]]
    return f"delete {show(address)}"


def _add_key(tree: dict, pick: Pick) -> str | None:
    address = pick("add a key to", [()] + [a for a, v in _nodes(tree) if isinstance(v, dict)])
    key, value = pick("key", NEW_KEYS), pick("value", ODD_VALUES)
    _at(tree, address)[key] = value
    return f"add {show(address + (key,))} = {_short(value)}"


def _retype(tree: dict, pick: Pick) -> str | None:
    return _replace(tree, pick, "retype", [a for a, _ in _nodes(tree)],
                    lambda old: [v for v in ODD_VALUES if type(v) is not type(old)])


def _dimension(tree: dict, pick: Pick) -> str | None:
    dims = [a for a, _ in _nodes(tree) if len(a) > 1 and a[-2] == "shape"]
    return _replace(tree, pick, "dimension", dims, lambda d: [-1, 0, 2**31, 2**40, 2**62, 2**64] + (
        [-d, d * 1000] if isinstance(d, int) else []))


def _number(tree: dict, pick: Pick) -> str | None:
    numbers = [a for a, v in _nodes(tree) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return _replace(tree, pick, "number", numbers, lambda v: [-v, v * 1000, -1, 2**62, -(2**62), 10**400])


def _enum(tree: dict, pick: Pick) -> str | None:
    words = [a for a, v in _nodes(tree) if isinstance(v, str) and (
        a[-1] in ENUM_KEYS or (len(a) > 1 and a[-2] in ENUM_LISTS))]
    return _replace(tree, pick, "enum", words, lambda _: UNKNOWN_WORDS)


def _path(tree: dict, pick: Pick) -> str | None:
    paths = [a for a, v in _nodes(tree) if a[-1] in ("path", "tokenizer") and isinstance(v, str)]
    return _replace(tree, pick, "path", paths, lambda _: PATHS)


def _truncate(tree: dict, pick: Pick) -> str | None:
    lists = [a for a, v in _nodes(tree) if isinstance(v, list) and v]
    if not lists:
        return None
    address = pick("truncate", lists)
    items = _at(tree, address)
    keep = pick("keep", list(range(len(items))))
    del items[keep:]
    return f"truncate {show(address)} to {keep} item(s)"


def _duplicate(tree: dict, pick: Pick) -> str | None:
    lists = [a for a, v in _nodes(tree) if isinstance(v, list) and v]
    if not lists:
        return None
    address = pick("duplicate in", lists)
    items = _at(tree, address)
    i = pick("item", list(range(len(items))))
    items.insert(i, json.loads(json.dumps(items[i])))
    return f"duplicate {show(address + (i,))}"


MUTATIONS = {f.__name__[1:]: f for f in (_delete, _add_key, _retype, _dimension, _number, _enum, _path, _truncate,
                                         _duplicate)}


def mutate(tree: dict, pick: Pick) -> str:
    """Apply one mutation to ``tree`` in place; returns what it did."""
    kind = pick("mutation", list(MUTATIONS))
    return MUTATIONS[kind](tree, pick) or _retype(tree, pick)  # a kind with nothing to act on (no lists left)


def _zeros(specs: list[edge.TensorSpec]) -> dict[str, np.ndarray] | None:
    """Inputs of zeros, dynamic axes 1; None when they would be too large to be worth allocating."""
    shapes = {s.name: tuple(d if isinstance(d, int) else 1 for d in s.shape) for s in specs}
    if any(math.prod(shape) > MAX_FEED for shape in shapes.values()):
        return None
    return {s.name: np.zeros(shapes[s.name], s.dtype) for s in specs}


def _raised_in(exc: BaseException, function: Callable) -> bool:
    """Whether ``function`` was on the stack: the manifest's own errors must name a key; a missing or
    changed artifact file (``verify``) or one onnxruntime cannot open has a file to name instead."""
    return any(frame.f_code is function.__code__ for frame, _ in traceback.walk_tb(exc.__traceback__))


def attempt(bundle: Path, manifest: dict, target: str, mutations: list[str]) -> str:
    """Write ``manifest`` into ``bundle``, load it and run it once: the name of the error, or
    "ran". Anything but an ``EdgeError`` fails, showing the mutations that led to it."""
    (bundle / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    try:
        model = edge.load(bundle, target=target)
        feeds = _zeros(model.inputs)
        if feeds is None:
            return "loaded"
        model.run(feeds)
    except edge.EdgeError as exc:
        if isinstance(exc, edge.InvalidModelError) and _raised_in(exc, read_manifest):
            assert "key '" in exc.message and "\n" not in exc.message, \
                f"the manifest error names no key: {exc.message!r}, after {mutations}"
        return type(exc).__name__
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} escaped edge: {exc!r:.300}, after {mutations}") from exc
    return "ran"


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    """A private copy of the digits bundle: the session's own must stay whole."""
    return Path(shutil.copytree(digits_bundle, tmp_path / "digits"))


def test_load_of_mutated_manifests_raises_only_edge_errors(bundle):
    text = (bundle / MANIFEST).read_text(encoding="utf-8")
    target = json.loads(text)["target"]["name"]
    assert attempt(bundle, json.loads(text), target, []) == "ran"  # so a rejection below is the mutation's doing
    outcomes: Counter[str] = Counter()

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None)
    @given(st.data())
    def case(data: st.DataObject) -> None:
        tree = json.loads(text)
        pick = lambda label, options: data.draw(st.sampled_from(options), label=label)  # noqa: E731
        mutations = [mutate(tree, pick) for _ in range(pick("mutations", [1, 2, 3]))]
        outcomes[attempt(bundle, tree, target, mutations)] += 1

    case()
    total = sum(outcomes.values())
    # Not vacuous: thousands of cases, a good share refused by the schema, and some that still run
    # (a mutation of free-form build notes must not break loading).
    assert total >= 0.9 * CASES, outcomes
    assert outcomes["InvalidModelError"] >= 0.3 * total, outcomes
    assert outcomes["ran"] >= 0.05 * total, outcomes


def _absolute(bundle: Path) -> str:
    return str(bundle / "model.fp32.onnx")  # the very file, so only the path's form is wrong


@pytest.mark.parametrize("address, value, key", [
    (("artifacts", 0, "size"), "98 KB", "artifacts[0].size"),
    (("artifacts", 0, "sha256"), MISSING, "artifacts[0].sha256"),
    (("artifacts", 0, "precision"), "int4", "artifacts[0].precision"),
    (("artifacts", 0, "path"), "../x.onnx", "artifacts[0].path"),
    (("artifacts", 0, "path"), _absolute, "artifacts[0].path"),
    (("inputs", 0, "shape", 1), -1, "inputs[0].shape[1]"),
    (("inputs", 0, "shape", 2), 2**40, "inputs[0].shape[2]"),
    # What the fuzz found: a bare TypeError from onnxruntime, OverflowError, TypeError from numpy,
    # and messages that named no key.
    (("profile", "runtime", "threads"), 2**62, "profile.runtime.threads"),
    (("profile", "gate", "atol"), 10**400, "profile.gate.atol"),
    (("inputs", 0, "range"), [0, 10**400], "inputs[0].range"),
    (("",), 1, ""),
    (("schema_version",), MISSING, "schema_version"),
], ids=["wrong-type", "missing-key", "unknown-precision", "path-leaves-bundle", "absolute-path",
        "negative-dimension", "absurd-dimension", "absurd-threads", "int-beyond-float", "int-beyond-float-range",
        "empty-unknown-key", "no-schema-version"])
def test_a_bad_manifest_is_an_invalid_model_naming_the_key(bundle, address, value, key):
    manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    target = manifest["target"]["name"]
    parent = _at(manifest, address[:-1])
    if value is MISSING:
        del parent[address[-1]]
    else:
        parent[address[-1]] = value(bundle) if callable(value) else value
    (bundle / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(edge.InvalidModelError) as exc:
        edge.load(bundle, target=target)
    assert exc.value.exit_code == 4
    assert f"key '{key}'" in exc.value.message and "\n" not in exc.value.message, exc.value.message


def test_an_unreadable_path_and_absurd_threads_are_edge_errors(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    for i, artifact in enumerate(manifest["artifacts"]):  # whichever load picks
        artifact["path"] = "x" * 300 + f"{i}.onnx"  # longer than a file name may be: stat() raises OSError
    (bundle / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(edge.InvalidModelError, match="cannot be read"):
        edge.load(bundle, target=manifest["target"]["name"])
    with pytest.raises(edge.UsageError, match="threads must be"):
        edge.load(bundle, threads=2**62)  # onnxruntime takes a C int


def test_a_full_int8_artifacts_quantization_record_is_read_and_checked(digits_bundle, tmp_path):
    """A full-int8 TFLite artifact records the scale and zero point of its int8 input: that key is
    known (a slow test exports one), and a damaged one names the key."""
    import shutil

    bundle = Path(shutil.copytree(digits_bundle, tmp_path / "q"))
    m = json.loads((bundle / "manifest.json").read_text())
    spec = {"name": "pixels", "dtype": "int8", "shape": [1, 8, 8, 1], "layout": "NHWC",
            "quantization": {"scale": 0.0039, "zero_point": -128}}
    m["artifacts"][0]["inputs"] = [spec]
    (bundle / "manifest.json").write_text(json.dumps(m))
    read_manifest(bundle)
    spec["quantization"] = {"scale": -1.0, "zero_point": 0}
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(edge.InvalidModelError, match=r"key 'artifacts\[0\].inputs\[0\].quantization'"):
        read_manifest(bundle)
