"""A derived model file (e.g. INT8 from ``edgedeploy optimize``) benchmarked as standing for its source model."""

from __future__ import annotations

import pytest

from edgedeploy.benchmarking import BenchConfig, BenchResult, add_ratios, report, run_bench
from edgedeploy.errors import UserError

from .conftest import make_tiny_onnx

SHAPE = (1, 3, 32, 32)
FAST = {"runs": 5, "warmup": 1, "time_budget_s": 5.0, "timeout_s": 60.0}


def _row(cfg: BenchConfig, p50: float, size: int) -> BenchResult:
    return BenchResult(cfg, "ok", model_name="src", latency_ms={"p50": p50, "p99": p50}, model_memory_mb=40.0,
                       size_bytes=size)


def test_a_source_row_is_compared_with_the_anchors_of_its_source():
    anchor = _row(BenchConfig(model="src", engine="onnxruntime", shape=SHAPE, untuned=True), 8.0, 4000)
    other_shape = _row(BenchConfig(model="src", engine="onnxruntime", shape=(1, 3, 64, 64), untuned=True), 1.0, 4000)
    int8 = _row(BenchConfig(model="/cache/src.int8.onnx", source="src", engine="openvino", shape=SHAPE,
                            label="openvino int8 (edgedeploy optimize)"), 2.0, 1000)
    plain = _row(BenchConfig(model="/cache/src.int8.onnx", engine="openvino", shape=SHAPE), 2.0, 1000)
    add_ratios([anchor, other_shape, int8, plain])
    assert int8.anchor_scheme == "ORT default (anchor)" and int8.speedup == pytest.approx(4.0)
    assert int8.size_ratio == pytest.approx(4.0) and int8.memory_ratio == pytest.approx(1.0)
    assert int8.scheme == "openvino int8 (edgedeploy optimize)"
    assert anchor.size_ratio == pytest.approx(1.0)
    assert plain.speedup is None and plain.size_ratio is None  # no source: no anchor of its own in this run
    line = next(x for x in report.to_markdown([anchor, int8]).splitlines() if "edgedeploy optimize" in x)
    assert "| 4.00x | - | 4.00x |" in line  # size ratio, accuracy, speed-up


def test_source_and_label_cross_the_process_boundary_and_an_anchor_cannot_have_a_source():
    cfg = BenchConfig(model="a.onnx", source="src", label="x", engine="onnxruntime", shape=SHAPE)
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg and cfg.compared_model == "src"
    with pytest.raises(UserError, match="anchor is the source model"):
        BenchConfig(model="a.onnx", source="src", engine="onnxruntime", shape=SHAPE, untuned=True)


def test_a_derived_file_runs_under_its_source_name_in_a_real_worker(tiny_onnx, tmp_path):
    small = make_tiny_onnx(tmp_path / "tiny.small.onnx", channels=2)  # a smaller file standing for tiny
    anchor, derived = run_bench([
        BenchConfig(model=str(tiny_onnx), engine="onnxruntime", shape=SHAPE, untuned=True, **FAST),
        BenchConfig(model=str(small), source=str(tiny_onnx), label="small (derived)", engine="onnxruntime",
                    shape=SHAPE, threads=1, **FAST),
    ])
    assert anchor.ok and derived.ok, derived.reason
    assert derived.model_name == "tiny" and derived.scheme == "small (derived)"
    assert derived.speedup is not None and derived.size_ratio > 1
