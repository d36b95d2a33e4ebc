"""Targets and profiles load through one strict schema."""

from __future__ import annotations

import pytest

from edge.core import catalog, schema
from edge.core.errors import ConfigError, UnknownTargetError

REQUIRED_TARGETS = {"rpi4", "rpi5", "rpi-zero2w", "android-arm64", "x86-minipc", "x86-avx512", "jetson-orin-nano"}


def test_every_shipped_target_validates_and_has_a_profile():
    names = catalog.target_names()
    assert REQUIRED_TARGETS <= set(names)
    for name in names:
        target = catalog.load_target(name)
        profile = catalog.profile_for(target)
        assert profile.target == name
        assert profile.variants, name
        assert target.cores > 0


def test_every_shipped_profile_resolves():
    for name in catalog.profile_names():
        profile = catalog.load_profile(name)
        assert profile.opset >= 13
        assert profile.runtime.preference


def test_profile_extends_merges_tables_and_replaces_lists():
    rpi4 = catalog.load_profile("rpi4")
    base = catalog.load_profile("base")
    assert rpi4.runtime.threads == 4  # from rpi4.toml
    assert rpi4.runtime.preference[0] == "litert"  # from arm64.toml
    assert rpi4.validation == base.validation  # from base.toml, untouched
    assert [v.name for v in rpi4.variants] == ["fp32", "int8", "int8-static", "tflite-fp32", "tflite-fp16", "tflite-int8",
                                               "tflite-int8-static", "int4-weights", "int8-weights"]  # arm64's list replaced base's
    assert rpi4.variants[2].activation_type == "s8"
    assert catalog.load_profile("x86-avx512").variants[2].activation_type == "u8"
    assert catalog.load_profile("x86-64-generic").variants[1].reduce_range


def test_big_little_target_declares_its_clusters():
    phone = catalog.load_target("android-arm64")
    assert len(phone.clusters) >= 2
    assert len({c.capacity for c in phone.clusters}) == len(phone.clusters)
    assert catalog.profile_for(phone).runtime.affinity == "big"


def test_unknown_key_names_file_key_and_closest(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text((catalog._data_dir("targets") / "rpi4.toml").read_text().replace("memory_mb", "memroy_mb").replace('name = "rpi4"', 'name = "mine"'))
    with pytest.raises(ConfigError) as exc:
        catalog.load_target(str(bad))
    assert "mine.toml" in exc.value.message and "'memroy_mb'" in exc.value.message
    assert exc.value.hint == "did you mean 'memory_mb'?"


def test_wrong_type_is_an_error(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('extends = "rpi4"\n[runtime]\nthreads = "four"\n')
    with pytest.raises(ConfigError, match=r"p\.toml: key 'runtime\.threads' must be int, got str"):
        catalog.load_profile(str(bad))


def test_nested_unknown_key_and_bad_literal(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('extends = "rpi4"\n[[variants]]\nname = "q"\nprecison = "int8-static"\n')
    with pytest.raises(ConfigError) as exc:
        catalog.load_profile(str(bad))
    assert "variants[0].precison" in exc.value.message and "precision" in exc.value.hint
    bad.write_text('extends = "rpi4"\n[[variants]]\nname = "q"\nprecision = "int9"\n')
    with pytest.raises(ConfigError, match="must be one of"):
        catalog.load_profile(str(bad))


def test_extends_loop_is_reported(tmp_path):
    a = tmp_path / "a.toml"
    a.write_text(f'extends = "{a}"\n')
    with pytest.raises(ConfigError, match="loops"):
        catalog.load_profile(str(a))


def test_unknown_target_suggests_the_nearest():
    with pytest.raises(UnknownTargetError) as exc:
        catalog.load_target("rpi6")
    assert exc.value.hint.startswith("did you mean 'rpi")


def test_schema_roundtrip():
    target = catalog.load_target("rpi5")
    assert schema.load(catalog.Target, schema.to_dict(target), "roundtrip") == target


def test_a_profile_asking_for_absurd_threads_is_refused(tmp_path):
    path = tmp_path / "many.toml"
    path.write_text('extends = "rpi5"\n[runtime]\nthreads = 5000\n')
    with pytest.raises(ConfigError, match="key 'runtime.threads' must be 0"):
        catalog.load_profile(str(path))
    path.write_text('extends = "rpi5"\n[runtime]\nthreads = 3\n')
    assert catalog.load_profile(str(path)).runtime.threads == 3
