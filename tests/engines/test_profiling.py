"""Per-layer profiles: every executed layer named with its operator, kernel and the precision it computed in."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.engines import EngineOptions
from edgedeploy.engines.profiling import LayerTime, by_family, compare, mean_per_layer, precision_name
from edgedeploy.errors import UserError
from tests.conftest import installed

PROFILED = [installed("onnxruntime"), installed("openvino")]


@pytest.fixture(scope="module")
def tiny_int8(tiny_onnx, tmp_path_factory):
    """The tiny model quantized to QDQ INT8 (ORT quantize_static, a few random calibration inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": rng.standard_normal((1, 3, 32, 40)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    quantize_static(str(tiny_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ)
    return out


def test_mean_time_per_layer_after_warm_up_and_families_add_up():
    records = [LayerTime("a", "Conv", "k1", "int8", 30.0), LayerTime("b", "Relu", "k2", "fp32", 9.0),
               LayerTime("a", "Conv", "k1", "int8", 3.0), LayerTime("b", "Relu", "k2", "fp32", 1.0),
               LayerTime("a", "Conv", "k1", "int8", 1.0), LayerTime("b", "Relu", "k2", "fp32", 1.0)]
    layers = mean_per_layer(records, skip=1)  # the first run of each layer is warm-up
    assert [(x.name, x.ms) for x in layers] == [("a", 2.0), ("b", 1.0)]
    fams = by_family(layers)
    assert [(f.op, f.precision, f.layers) for f in fams] == [("Conv", "int8", 1), ("Relu", "fp32", 1)]
    assert sum(f.share for f in fams) == pytest.approx(1.0)
    rows = {r.op: r for r in compare(layers, [LayerTime("a", "Conv", "k", "bf16", 0.5)])}
    assert rows["Conv"].speedup == pytest.approx(4.0) and rows["Relu"].speedup is None
    assert rows["Conv"].before_precisions == "int8" and rows["Conv"].after_precisions == "bf16"
    assert precision_name("I8") == precision_name("u8") == "int8" and precision_name("f32") == "fp32"


@pytest.mark.parametrize("engine", PROFILED)
def test_a_float_model_profiles_in_fp32_when_fp32_is_asked(engine, tiny_onnx, image_batch):
    layers = engines.profile(tiny_onnx, engine=engine, options=EngineOptions(threads=1, precision="fp32"),
                             feeds={"input": image_batch}, runs=3)
    assert layers and all(x.ms >= 0 for x in layers) and sum(x.ms for x in layers) > 0
    convs = [x for x in layers if x.op.startswith("Conv")]
    assert convs and all(x.precision == "fp32" for x in convs), layers
    assert len({x.name for x in layers}) == len(layers)  # one record per layer


@pytest.mark.parametrize("engine", PROFILED)
def test_an_int8_model_shows_which_layers_ran_in_int8(engine, tiny_int8):
    layers = engines.profile(tiny_int8, engine=engine, shape=(1, 3, 32, 40), runs=2, untuned=True)
    assert any(x.precision == "int8" for x in layers), [(x.op, x.kernel, x.precision) for x in layers]


@pytest.mark.parametrize("engine", [installed("ncnn")])
def test_an_engine_without_a_profiler_says_which_have_one(engine, tiny_onnx):
    with pytest.raises(UserError, match="no per-layer times.*onnxruntime or openvino"):
        engines.profile(tiny_onnx, engine=engine)


def test_profile_needs_a_run(tiny_onnx):
    with pytest.raises(UserError, match="runs = 0"):
        engines.profile(tiny_onnx, runs=0)

