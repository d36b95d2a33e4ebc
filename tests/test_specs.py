from __future__ import annotations

import numpy as np
import pytest

from edge.core.errors import UsageError
from edge.core.specs import DimSizes, TensorSpec, check_inputs, parse_spec, random_inputs


def test_parse_full_spec():
    spec = parse_spec("pixels:float32[batch,1,8,8]:0..1")
    assert spec == TensorSpec("pixels", "float32", ("batch", 1, 8, 8), (0.0, 1.0))
    assert spec.dynamic_axes == {0: "batch"}
    assert parse_spec("ids:int64[batch, seq]").shape == ("batch", "seq")
    assert parse_spec("scalar:float32[]").shape == ()


@pytest.mark.parametrize("text", ["pixels", "pixels:float32", "x:float32[1,2", "1x:float32[1]", "x:float32[1]:a..b"])
def test_malformed_spec(text):
    with pytest.raises(UsageError, match="bad input spec"):
        parse_spec(text)


def test_unknown_dtype():
    with pytest.raises(UsageError, match="unknown dtype 'float13'"):
        parse_spec("x:float13[1]")


def test_random_inputs_respect_ranges_dtypes_and_vary_dynamic_axes():
    specs = [parse_spec("ids:int64[batch,seq]:5..9"), parse_spec("x:float32[batch,3]:-2..2"), parse_spec("m:bool[batch]")]
    first, second = (random_inputs(specs, DimSizes(), i) for i in range(2))
    assert first["ids"].dtype == np.int64 and first["ids"].min() >= 5 and first["ids"].max() <= 9
    assert first["x"].dtype == np.float32 and np.abs(first["x"]).max() <= 2
    assert first["m"].dtype == np.bool_
    assert first["ids"].shape != second["ids"].shape  # batch and seq differ between samples
    assert random_inputs(specs, DimSizes({"seq": 7, "batch": 3}), 0)["ids"].shape == (3, 7)


def test_check_inputs_names_the_problem():
    specs = [parse_spec("x:float32[batch,3]")]
    check_inputs(specs, {"x": np.zeros((5, 3), np.float32)}, "f.npz")
    with pytest.raises(UsageError, match="no array for input"):
        check_inputs(specs, {"y": np.zeros((5, 3), np.float32)}, "f.npz")
    with pytest.raises(UsageError, match=r"'x' has shape \[5, 4\], expected \['batch', 3\]"):
        check_inputs(specs, {"x": np.zeros((5, 4), np.float32)}, "f.npz")
    with pytest.raises(UsageError, match="'x' is float64, expected float32"):
        check_inputs(specs, {"x": np.zeros((5, 3))}, "f.npz")
