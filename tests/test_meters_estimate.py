"""The estimate "meter": opt-in, labelled, and never picked unasked; plus the registry's shape."""

from __future__ import annotations

import importlib
import time

import pytest

from edge.core import catalog
from edge.device.meters import METERS, find, meter
from edge.device.meters.estimate import FIGURES, EstimateMeter

from conftest import DATA


def test_estimate_is_labelled_as_one(tmp_path):
    estimate = EstimateMeter(tmp_path, target="rpi4")
    found = estimate.detect()
    assert found.available and found.reason.endswith("not measured")
    estimate.start()
    time.sleep(0.1)
    reading = estimate.stop()
    assert reading.confidence == "estimated"
    assert reading.energy_j == pytest.approx(6.0 * reading.duration_s)
    assert reading.method.startswith("estimated from 6 W (Raspberry Pi documentation") and "not measured" in reading.method


def test_a_given_figure(tmp_path):
    estimate = EstimateMeter(tmp_path, watts=2.5, source="a USB power meter on the bench")
    estimate.start()
    reading = estimate.stop()
    assert "2.5 W (a USB power meter on the bench)" in reading.method and reading.confidence == "estimated"


def test_target_detected_from_the_tree_when_not_given():
    assert meter("estimate", DATA / "machines/rpi5").detect().reason.startswith("estimate from 4 W")


def test_no_figure_no_estimate(tmp_path):
    assert "no stated power figure for target x86-avx512" in EstimateMeter(tmp_path, "x86-avx512").detect().reason
    assert "no stated power figure for target unknown" in EstimateMeter(tmp_path).detect().reason


def test_never_chosen_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vcgencmd: on a real Pi 5 the PMIC meter would answer
    targets = [catalog.load_target(n) for n in catalog.target_names()]
    assert all("estimate" not in t.meters for t in targets)
    every_measuring_meter = sorted({m for t in targets for m in t.meters})
    assert find(every_measuring_meter, DATA / "machines/rpi5")[0] is None
    assert set(FIGURES) <= {t.name for t in targets}


def test_registry_names_match_modules_and_classes():
    targets = [catalog.load_target(n) for n in catalog.target_names()]
    assert {m for t in targets for m in t.meters} <= set(METERS)
    for name, path in METERS.items():
        module, cls = path.split(":")
        assert module == f"edge.device.meters.{name.replace('-', '_')}"
        assert cls == "".join(part.capitalize() for part in name.split("-")) + "Meter"
        assert getattr(importlib.import_module(module), cls).name == name
