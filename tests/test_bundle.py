"""The bundle folder and its manifest: written whole or not at all, and refused on read when damaged.

Every check of the manifest is tried on both sides of its boundary (size 0 and -1, opset 999 and 1000,
max_length 2**20 - 1 and 2**20...), and the --force replace is made to fail at its last rename.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from edge.core import catalog
from edge.core.bundle import (SCHEMA_VERSION, Artifact, Generation, Manifest, read_manifest, sha256_file, staged,
                              verify, write_manifest)
from edge.core.catalog import MAX_THREADS
from edge.core.errors import InputNotFoundError, InvalidModelError, OutputExistsError
from edge.core.specs import MAX_ELEMENTS


def test_staged_writes_whole_or_nothing(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged(dest, force=False) as stage:
            (stage / "half.onnx").write_bytes(b"x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor the staging folder
    with staged(dest, force=False) as stage:
        (stage / "a").write_text("1")
    assert (dest / "a").read_text() == "1"


def test_staged_makes_missing_parents_and_force_needs_no_existing_output(tmp_path):
    dest = tmp_path / "a" / "b" / "out"
    with staged(dest, force=True) as stage:
        assert stage.parent == dest.parent and stage.name.startswith(".out.partial-")
        (stage / "a").write_text("1")
    assert (dest / "a").read_text() == "1" and [p.name for p in dest.parent.iterdir()] == ["out"]


def test_existing_output_needs_force_and_survives_a_failed_replace(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("keep")
    with pytest.raises(OutputExistsError):
        with staged(dest, force=False):
            pass
    with pytest.raises(KeyboardInterrupt):
        with staged(dest, force=True) as stage:
            (stage / "new").write_text("x")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (dest / "old").read_text() == "keep"
    with staged(dest, force=True) as stage:
        (stage / "new").write_text("x")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _failing_rename(monkeypatch, dest: Path, which: str) -> None:
    """Make one rename of ``staged`` fail: 'final' (stage -> destination) or 'aside' (destination -> .old)."""
    real = os.replace

    def replace(src, dst):
        final = Path(src).name.startswith(f".{dest.name}.partial-") and Path(dst) == dest
        aside = Path(src) == dest and Path(dst).name.startswith(f".{dest.name}.old-")
        if (final and which == "final") or (aside and which == "aside"):
            raise OSError(f"simulated failure renaming {src} to {dst}")
        return real(src, dst)

    monkeypatch.setattr("edge.core.bundle.os.replace", replace)


def _old_bundle(tmp_path: Path) -> Path:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("keep")
    return dest


def test_failed_final_rename_does_not_delete_the_old_bundle(tmp_path, monkeypatch):
    """--force must not delete the old bundle before the new one is in place: if that last rename fails,
    the old bundle's bytes are still on disk."""
    dest = _old_bundle(tmp_path)
    _failing_rename(monkeypatch, dest, "final")
    with pytest.raises(OSError, match="simulated"):
        with staged(dest, force=True) as stage:
            (stage / "new").write_text("x")
    kept = [p for p in tmp_path.rglob("old") if p.read_text() == "keep"]
    assert kept, "the old bundle was deleted before the new one was in place"
    assert not list(tmp_path.rglob("new"))  # and the half-done new one is gone


@pytest.mark.parametrize("step", ["final", "aside"])
def test_a_failed_rename_leaves_the_old_bundle_in_place(tmp_path, monkeypatch, step):
    """Moving the old bundle aside fails: it stays. The final rename fails: the old one, moved aside
    to make room, goes back. Either way no staging or .old folder is left."""
    dest = _old_bundle(tmp_path)
    _failing_rename(monkeypatch, dest, step)
    with pytest.raises(OSError, match="simulated"):
        with staged(dest, force=True) as stage:
            (stage / "new").write_text("x")
    assert (dest / "old").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InputNotFoundError):
        read_manifest(tmp_path / "nope")
    with pytest.raises(InvalidModelError, match="has no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InvalidModelError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(InvalidModelError, match="schema version 99"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1, "created": "x"}))
    with pytest.raises(InvalidModelError, match="is required but missing"):
        read_manifest(tmp_path)


# -- what the schema's types cannot say: check() through read_manifest ----------------------------------------


def _manifest(folder: Path) -> Manifest:
    """A valid manifest with one artifact whose file exists, for the x86-avx512 target."""
    (folder / "model.fp32.onnx").write_bytes(b"not really onnx")
    artifact = Artifact("fp32", "onnx", "model.fp32.onnx", 15, sha256_file(folder / "model.fp32.onnx"), "fp32",
                        opset=17, layouts={"x": "NHWC"}, ops=[["ADD", 1]])
    target = catalog.load_target("x86-avx512")
    return Manifest(SCHEMA_VERSION, "2026-01-01T00:00:00+00:00", {"kind": "test"}, target, catalog.profile_for(target),
                    [{"name": "x", "dtype": "float32", "shape": [1, 3, 8, 8], "layout": "NCHW"}],
                    [{"name": "y", "dtype": "float32", "shape": [1, 10]}], [artifact], {"edge": "test"},
                    preferred=["fp32"], preprocessing={"text": {"tokenizer": "tokenizer.json", "max_length": 128}})


def _read_changed(folder: Path, change) -> Manifest:
    data = _manifest(folder).to_json()
    change(data, data["artifacts"][0])
    (folder / "manifest.json").write_text(json.dumps(data))
    return read_manifest(folder)


def _set(key, value, where="artifact"):
    def change(data, artifact):
        (artifact if where == "artifact" else data)[key] = value
    return change


def _second_artifact(**fields):
    def change(data, artifact):
        data["artifacts"].append({**artifact, "name": "int8", "path": "model.int8.onnx", **fields})
    return change


def _text(value):
    return _set("preprocessing", {"text": value}, where="manifest")


def _generation(**fields):
    """A causal language model's record: two layers of [kv_heads, head_dim], the rest given or default."""
    return _set("generation", {"kv": [[2, 64], [2, 64]], "context": 2048, **fields}, where="manifest")


def _threads(value):
    def change(data, artifact):
        data["profile"]["runtime"]["threads"] = value
    return change


VALID = {
    "as written": lambda data, artifact: None,
    "size 0": _set("size", 0),
    "largest size": _set("size", (1 << 40) - 1),
    "no opset": _set("opset", None),
    "opset 1": _set("opset", 1),
    "opset 999": _set("opset", 999),
    "no ops": _set("ops", []),
    "two ops": _set("ops", [["ADD", 1], ["CONV_2D", 3]]),
    "no layouts": _set("layouts", {}),
    "same layout": _set("layouts", {"x": "NCHW"}),
    "path in a folder": _set("path", "sub/model.fp32.onnx"),
    "artifact inputs": _set("inputs", [{"name": "x", "dtype": "int8", "shape": [1, 8, 8, 3], "layout": "NHWC"}]),
    "nothing preferred": _set("preferred", [], where="manifest"),
    "no preprocessing": _set("preprocessing", {}, where="manifest"),
    "max_length 1": _text({"tokenizer": "t.json", "max_length": 1}),
    "largest max_length": _text({"tokenizer": "t.json", "max_length": (1 << 20) - 1}),
    "second artifact": _second_artifact(),
    "dims": _set("dims", {"sequence": 1, "batch": MAX_ELEMENTS - 1}, where="manifest"),
    "threads 1": _threads(1),
    "most threads": _threads(MAX_THREADS),
    "generation": _generation(),
    "generation at its limits": _generation(kv=[[1, (1 << 16) - 1]], context=1 << 20, eos=[0, (1 << 31) - 1],
                                            tokenizer="tok/tokenizer.json", past="cache.{kv}.{layer}",
                                            present="next.{layer}.{kv}", cache_dtype="float16"),
    "shortest context": _generation(context=1),
}

INVALID = {
    "no artifact": (_set("artifacts", [], where="manifest"), "lists no artifact"),
    "input twice": (_set("inputs", [{"name": "x", "dtype": "float32", "shape": [1]}] * 2, where="manifest"),
                    "'inputs' names a tensor twice"),
    "output twice": (_set("outputs", [{"name": "y", "dtype": "float32", "shape": [1]}] * 2, where="manifest"),
                     "'outputs' names a tensor twice"),
    "bad output spec": (_set("outputs", [{"name": "y", "dtype": "float33", "shape": [1]}], where="manifest"),
                        r"key 'outputs\[0\].dtype' must be one of"),
    "empty name": (_set("name", ""), r"artifacts\[0\].name' is empty or not unique"),
    "same name twice": (_second_artifact(name="fp32"), r"artifacts\[0\].name' is empty or not unique"),
    "empty path": (_set("path", ""), r"artifacts\[0\].path' must be a .onnx file inside the bundle"),
    "absolute path": (_set("path", "/tmp/model.fp32.onnx"), r"artifacts\[0\].path'"),
    "path outside": (_set("path", "../model.fp32.onnx"), r"artifacts\[0\].path'"),
    "path back out": (_set("path", "sub/../../model.fp32.onnx"), r"artifacts\[0\].path'"),
    "NUL in path": (_set("path", "model\x00.onnx"), r"artifacts\[0\].path'"),
    "suffix of another format": (_set("path", "model.fp32.tflite"), r"artifacts\[0\].path' must be a .onnx file"),
    "negative size": (_set("size", -1), r"artifacts\[0\].size' is not a file size: -1"),
    "size beyond 1 TiB": (_set("size", 1 << 40), r"artifacts\[0\].size' is not a file size"),
    "upper-case digest": (_set("sha256", "A" * 64), r"artifacts\[0\].sha256' is not a sha256 digest"),
    "short digest": (_set("sha256", "a" * 63), r"artifacts\[0\].sha256'"),
    "opset 0": (_set("opset", 0), r"artifacts\[0\].opset' is not an opset: 0"),
    "opset 1000": (_set("opset", 1000), r"artifacts\[0\].opset' is not an opset: 1000"),
    "op without version": (_set("ops", [["ADD"]]), r"artifacts\[0\].ops\[0\]' must be \[name, version\]"),
    "op with three parts": (_set("ops", [["ADD", 1, 2]]), r"ops\[0\]' must be"),
    "op name not a string": (_set("ops", [["ADD", 1], [7, 1]]), r"ops\[1\]' must be"),
    "op version a string": (_set("ops", [["ADD", "1"]]), r"ops\[0\]' must be"),
    "op version a bool": (_set("ops", [["ADD", True]]), r"ops\[0\]' must be"),
    "bad artifact input": (_set("inputs", [{"name": "", "dtype": "int8", "shape": [1]}]),
                           r"artifacts\[0\].inputs\[0\]"),
    "bad artifact output": (_set("outputs", [{"name": "y", "dtype": "int8", "shape": "1"}]),
                            r"artifacts\[0\].outputs\[0\]"),
    "layout of other axes": (_set("layouts", {"x": "NHWD"}), r"layouts.x' must reorder the input's layout 'NCHW'"),
    "layout of an unknown input": (_set("layouts", {"z": "NHWC"}), r"layouts.z' must reorder the input's layout None"),
    "preferred names no artifact": (_set("preferred", ["fp32", "int8"], where="manifest"),
                                    "'preferred' names no artifact of the bundle: int8"),
    "text not a table": (_text("tokenizer.json"), "'preprocessing.text' must hold a tokenizer path and a max_length"),
    "text without tokenizer": (_text({"max_length": 128}), "preprocessing.text"),
    "tokenizer not a path": (_text({"tokenizer": 5, "max_length": 128}), "preprocessing.text"),
    "max_length a string": (_text({"tokenizer": "t.json", "max_length": "128"}), "preprocessing.text"),
    "max_length 0": (_text({"tokenizer": "t.json", "max_length": 0}), "preprocessing.text"),
    "max_length 2**20": (_text({"tokenizer": "t.json", "max_length": 1 << 20}), "preprocessing.text"),
    "dim 0": (_set("dims", {"batch": 1, "sequence": 0}, where="manifest"), "'dims.sequence' must be a size > 0"),
    "dim too large": (_set("dims", {"batch": MAX_ELEMENTS}, where="manifest"), "'dims.batch' must be a size > 0"),
    "negative threads": (_threads(-1), "'profile.runtime.threads' must be 0"),
    "too many threads": (_threads(MAX_THREADS + 1), "'profile.runtime.threads' must be 0"),
    "no kv layer": (_generation(kv=[]), r"'generation.kv' must list \[kv_heads, head_dim\] per layer"),
    "kv pair of one": (_generation(kv=[[2, 64], [2]]), "'generation.kv'"),
    "kv pair of three": (_generation(kv=[[2, 64, 1]]), "'generation.kv'"),
    "kv of 0 heads": (_generation(kv=[[2, 64], [0, 64]]), "'generation.kv'"),
    "kv head_dim 2**16": (_generation(kv=[[2, 1 << 16]]), "'generation.kv'"),
    "context 0": (_generation(context=0), "'generation.context' must be a number of tokens > 0"),
    "context beyond 2**20": (_generation(context=(1 << 20) + 1), "'generation.context'"),
    "negative eos": (_generation(eos=[2, -1]), "'generation.eos' must list token ids"),
    "eos beyond int32": (_generation(eos=[1 << 31]), "'generation.eos'"),
    "absolute tokenizer": (_generation(tokenizer="/tmp/tokenizer.json"),
                           "'generation.tokenizer' must be a file inside"),
    "tokenizer outside": (_generation(tokenizer="../tokenizer.json"), "'generation.tokenizer'"),
    "past without kv": (_generation(past="past.{layer}"), "'generation.past' must name the tensors with"),
    "past without layer": (_generation(past="past.{kv}"), "'generation.past'"),
    "past with a third field": (_generation(past="past.{layer}.{kv}.{x}"), "'generation.past'"),
    "past with kv twice": (_generation(past="past.{kv}.{kv}"), "'generation.past'"),
    "past with layer twice": (_generation(past="past.{layer}.{layer}"), "'generation.past'"),
    "present without layer": (_generation(present="present.{kv}"), "'generation.present'"),
    "int8 cache": (_generation(cache_dtype="int8"), "'generation.cache_dtype' must be float32 or float16"),
}


@pytest.mark.parametrize("change", VALID.values(), ids=VALID.keys())
def test_valid_manifests_read_back(tmp_path, change):
    manifest = _read_changed(tmp_path, change)
    data = _manifest(tmp_path).to_json()
    change(data, data["artifacts"][0])
    if data["generation"] is not None:  # read back with its defaults filled in
        data["generation"] = dataclasses.asdict(Generation(**data["generation"]))
    assert manifest.to_json() == data


@pytest.mark.parametrize("change, message", INVALID.values(), ids=INVALID.keys())
def test_invalid_manifests_name_the_key(tmp_path, change, message):
    with pytest.raises(InvalidModelError, match=message) as caught:
        _read_changed(tmp_path, change)
    assert caught.value.hint  # every refusal says what to do


def test_a_refused_manifest_says_to_export_again(tmp_path):
    with pytest.raises(InvalidModelError) as caught:
        _read_changed(tmp_path, _set("opset", 0))
    assert caught.value.hint == "re-export the bundle with 'edge export'"


def test_write_manifest_keeps_the_field_order_and_refuses_nan(tmp_path):
    manifest = _manifest(tmp_path)
    write_manifest(tmp_path, manifest)
    text = (tmp_path / "manifest.json").read_text()
    assert text.endswith("}\n") and list(json.loads(text)) == [f.name for f in dataclasses.fields(Manifest)]
    assert read_manifest(tmp_path).to_json() == manifest.to_json()
    manifest.artifacts[0].latency = {"p50": float("nan")}  # NaN is not JSON: refuse it rather than write it
    with pytest.raises(ValueError):
        write_manifest(tmp_path, manifest)


def test_verify_checks_presence_and_bytes(tmp_path):
    manifest = _manifest(tmp_path)
    artifact = manifest.artifacts[0]
    assert verify(tmp_path, artifact) == tmp_path / "model.fp32.onnx"
    (tmp_path / "model.fp32.onnx").write_bytes(b"not really onnX")
    with pytest.raises(InvalidModelError, match="does not match the sha256 in its manifest"):
        verify(tmp_path, artifact)
    assert verify(tmp_path, artifact, digest=False) == tmp_path / "model.fp32.onnx"
    (tmp_path / "model.fp32.onnx").unlink()
    with pytest.raises(InvalidModelError, match="lists model.fp32.onnx, which is missing"):
        verify(tmp_path, artifact, digest=False)


def test_sha256_of_a_file_larger_than_one_chunk(tmp_path):
    data = bytes(range(256)) * (5 * 4096 + 7)  # about 5 MiB, not a whole number of chunks
    (tmp_path / "big").write_bytes(data)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()
