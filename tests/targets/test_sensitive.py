"""Sensitive nodes out of a target's INT8: excluded nodes lose their Q/DQ in the Jetson artefact, and
the greedy search keeps the fewest nodes in float that bring the metric within budget."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgedeploy.optimize.calibration import CalibrationSet
from edgedeploy.targets import tensorrt
from edgedeploy.targets.sensitive import keep_float


@pytest.fixture(scope="module")
def named(tiny_onnx, tmp_path_factory):
    """The tiny model with named nodes (exclusion is by node name, as in real exported models)."""
    m = onnx.load(str(tiny_onnx))
    for i, n in enumerate(m.graph.node):
        n.name = f"{n.op_type.lower()}_{i}"
    path = tmp_path_factory.mktemp("named") / "tiny.onnx"
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def calib():
    rng = np.random.default_rng(0)
    return CalibrationSet([{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(8)], "test")


def _quantized_inputs(path) -> set[str]:
    """Names of the weight nodes whose weights come through a DequantizeLinear (INT8 weights)."""
    g = onnx.load(str(path)).graph
    dq = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in g.node if n.op_type in ("Conv", "Gemm") and n.input[1] in dq}


def test_excluded_nodes_get_no_qdq(named, calib, tmp_path):
    names = {n.op_type: n.name for n in onnx.load(str(named)).graph.node}
    tensorrt.quantize_qdq(named, tmp_path / "all.onnx", calib, tmp_path)
    tensorrt.quantize_qdq(named, tmp_path / "some.onnx", calib, tmp_path, exclude=[names["Gemm"]])
    assert names["Gemm"] in _quantized_inputs(tmp_path / "all.onnx")
    assert names["Gemm"] not in _quantized_inputs(tmp_path / "some.onnx")
    assert names["Conv"] in _quantized_inputs(tmp_path / "some.onnx")


def test_keep_float_stops_at_the_first_count_within_budget(named, calib, tmp_path):
    qdq = tmp_path / "q.onnx"
    tensorrt.quantize_qdq(named, qdq, calib, tmp_path)
    calls = []

    def quantize(exclude):  # a metric that holds once one node is back in float
        calls.append(list(exclude))
        tensorrt.quantize_qdq(named, qdq, calib, tmp_path, exclude=exclude)
        return 0.9 if exclude else 0.5

    out = keep_float(named, qdq, list(calib.feeds), quantize=quantize, first_metric=0.4, reference=0.9,
                     budget=0.01, say=lambda _: None)
    assert [len(c) for c in calls] == [1] and len(out.float_nodes) == 1 and out.metric == 0.9
    assert out.steps == [(0, 0.4), (1, 0.9)] and "kept in float" in out.note("test")
    assert out.float_nodes[0]["name"] == calls[0][0]


def test_keep_front_float_grows_the_float_front_and_leaves_the_best_artefact(named, tmp_path):
    """The head is kept first, then a growing share of the first Convs; the best set tried is rebuilt last."""
    from edgedeploy.targets.sensitive import FRONT_SHARES, keep_front_float

    calls = []

    def quantize(exclude):  # never within budget; the second step is the best
        calls.append(list(exclude))
        return {0: 0.5, 1: 0.8}.get(len(calls) - 1, 0.6)

    kept, steps = keep_front_float(named, quantize=quantize, first_metric=0.4, reference=0.9, budget=0.01,
                                   say=lambda _: None)
    assert len(steps) == len(FRONT_SHARES) and "head + 0 Convs in float" in steps[0]
    # the head: each output's producers back to, and including, the last Conv on the path (the tiny model's one Conv)
    assert calls[0][:2] == ["softmax_5", "gemm_4"] and calls[0][-1] == "conv_0"
    assert kept == calls[1] and calls[-1] == kept  # the best set tried is the one left on disk
    ok, steps = keep_front_float(named, quantize=lambda ex: 0.9, first_metric=0.4, reference=0.9, budget=0.01,
                                 say=lambda _: None)
    assert ok == calls[0] and len(steps) == 1  # within budget at the first step: the head alone, no more tried
