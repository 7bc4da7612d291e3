"""Achieved GFLOP/s and share of the CPU's peak for a benchmark row, per the precision it ran at."""

from __future__ import annotations

from edgedeploy import modelinfo
from edgedeploy.benchmarking import BenchConfig, BenchResult, headroom, report
from tests.conftest import build_tiny_onnx


class FakePeak:
    method = "test peak"

    def peak_gflops(self, precision: str) -> float:
        return {"fp32": 100.0, "bf16": 200.0, "int8": 400.0}[precision]


def _row(path, shape, p50, settings=None):
    cfg = BenchConfig(model=str(path), engine="openvino", shape=shape, threads=2)
    return BenchResult(cfg, "ok", model_name="tiny", latency_ms={"p50": p50, "runs": 5},
                       engine_settings=settings or {})


def test_gflops_and_share_follow_the_flops_and_the_precision_run(tmp_path):
    path = build_tiny_onnx(tmp_path / "tiny.onnx")
    shape = (1, 3, 16, 16)
    flops = modelinfo.describe(str(path), shape=shape).flops
    assert flops
    h = headroom.of(_row(path, shape, 2.0), FakePeak())
    assert abs(h.gflops - flops / 2e-3 / 1e9) < 1e-9 and h.precision == "fp32" and h.share == h.gflops / 100
    bf16 = headroom.of(_row(path, shape, 2.0, {"INFERENCE_PRECISION_HINT": "<Type: 'bfloat16'>"}), FakePeak())
    assert bf16.precision == "bf16" and bf16.share == bf16.gflops / 200  # OpenVINO's default BF16: the BF16 peak
    md = report.to_markdown([_row(path, shape, 2.0)], peak=FakePeak())
    assert "GFLOP/s" in md and "% fp32" in md and "test peak" in md


def test_a_failed_row_or_unknown_model_has_no_headroom():
    bad = BenchResult(BenchConfig(model="nowhere.onnx", engine="openvino", shape=(1, 3, 8, 8)), "ok",
                      latency_ms={"p50": 1.0})
    assert headroom.of(bad, FakePeak()) is None
