"""The matrix, shapes and config validation: user mistakes stop the run before anything starts."""

from __future__ import annotations

import pytest

from edgedeploy.benchmarking import BenchConfig, plan, resolve_shape
from edgedeploy.util import parse_shape
from edgedeploy.errors import UserError
from edgedeploy.ingest import load_model


def test_shapes_accept_hxw_and_full_nchw(tiny_onnx):
    m = load_model(tiny_onnx)
    assert parse_shape("224") == (224, 224)
    assert resolve_shape(m, "32x32") == (1, 3, 32, 32)
    assert resolve_shape(m, "1x3x32x32", batch=4) == (4, 3, 32, 32)
    assert resolve_shape(m, None) == (1, 3, 32, 32)  # the model's own static dims


@pytest.mark.parametrize("text, says", [("64x64", "dimension 2 must be 32, got 64"), ("1x3x32", "takes rank 4"),
                                        ("axb", "is not a shape"), ("0x32", "below 1")])
def test_a_shape_the_model_cannot_take_is_one_clear_error(tiny_onnx, text, says):
    with pytest.raises(UserError, match=says):
        plan([str(tiny_onnx)], shapes=[text])


def test_the_matrix_has_anchors_first_and_says_what_it_skipped(tiny_onnx):
    configs, skipped = plan([str(tiny_onnx)], engine_names=["onnxruntime", "openvino", "paddle"],
                            precisions=["fp32", "bf16"], threads=[1, 2], runs=5)
    schemes = [c.scheme for c in configs]
    assert schemes[:2] == ["ORT default (anchor)", "OpenVINO default (anchor)"]
    assert schemes.count("openvino bf16 (edgedeploy)") == 2 and "onnxruntime bf16 (edgedeploy)" not in schemes
    reasons = {(s.engine, s.precision): s.reason for s in skipped}
    assert "not bf16" in reasons["onnxruntime", "bf16"]
    assert "paddle models only" in reasons["paddle", "*"]


def test_an_unknown_dataset_is_refused_with_a_suggestion(tiny_onnx):
    with pytest.raises(UserError, match="did you mean 'pages'"):
        plan([str(tiny_onnx)], dataset="pagez")


def test_config_round_trips_and_refuses_unknown_keys():
    cfg = BenchConfig(model="m", engine="openvino", shape=(1, 3, 8, 8), precision="bf16", threads=2)
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="did you mean 'threads'"):
        BenchConfig.from_dict({**cfg.to_dict(), "thread": 2})
    with pytest.raises(UserError, match="runs = 0"):
        BenchConfig(model="m", engine="onnxruntime", shape=(1, 3, 8, 8), runs=0)
    anchor = BenchConfig(model="m", engine="openvino", shape=(1, 3, 8, 8), untuned=True, precision="bf16", threads=2)
    assert (anchor.precision, anchor.threads, anchor.scheme) == ("fp32", None, "OpenVINO default (anchor)")
