from __future__ import annotations

import json

import pytest

from edge.core.bundle import read_manifest, staged
from edge.core.errors import InputNotFoundError, InvalidModelError, OutputExistsError


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
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (dest / "old").exists()
    with staged(dest, force=True) as stage:
        (stage / "new").write_text("x")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
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
