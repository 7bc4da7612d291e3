"""The runner end to end on the tiny model in real worker processes, and the ratio arithmetic."""

from __future__ import annotations

import signal

import pytest

from edgedeploy.benchmarking import BenchConfig, BenchResult, add_ratios, run_bench
from edgedeploy.benchmarking.runner import _failure_reason

SHAPE = (1, 3, 32, 32)
FAST = {"runs": 5, "warmup": 1, "time_budget_s": 5.0, "timeout_s": 60.0}


@pytest.fixture(scope="module")
def results(tiny_onnx, tmp_path_factory):
    corrupt = tmp_path_factory.mktemp("bad") / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    configs = [
        BenchConfig(model=str(tiny_onnx), engine="onnxruntime", shape=SHAPE, untuned=True, **FAST),
        BenchConfig(model=str(corrupt), engine="onnxruntime", shape=SHAPE, **FAST),
        BenchConfig(model=str(tiny_onnx), engine="onnxruntime", shape=(2, 3, 32, 32), threads=1, concurrency=2, **FAST),
    ]
    seen = []
    out = run_bench(configs, progress=lambda i, n, cfg: seen.append((i, n)))
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    return out


def test_a_good_row_has_every_figure(results):
    r = results[0]
    assert r.ok, r.reason
    assert r.scheme == "ORT default (anchor)" and r.model_name == "tiny"
    lat = r.latency_ms
    assert lat["runs"] == 5
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["std"] >= 0 and lat["mean"] > 0
    assert r.cold_start_ms >= r.load_ms > 0 and r.first_inference_ms > 0
    assert r.model_memory_mb >= 0 and r.peak_rss_mb >= r.baseline_rss_mb > 0
    assert r.throughput_ips > 0 and 0 <= r.cpu_utilisation
    assert r.power_w > 0 and r.power_source.split(":")[0] in ("measured", "estimated")
    assert r.size_bytes > 0 and r.engine_version


def test_a_corrupt_model_is_a_failed_row_and_the_rest_still_runs(results):
    bad, good = results[1], results[2]
    assert bad.status == "failed" and "not a valid ONNX model" in bad.reason
    assert bad.p50 is None and bad.speedup is None
    assert good.ok, good.reason
    assert good.config.batch == 2 and good.throughput_ips > 0  # two threads, items counted at batch 2


def test_ratios_are_against_the_anchor_of_the_same_shape(results):
    anchor = results[0]
    assert anchor.speedup == pytest.approx(1.0) and anchor.anchor_scheme == anchor.scheme
    assert results[2].speedup is None  # batch 2 is another shape: it has no anchor in this run


def test_a_worker_past_its_timeout_is_a_failed_row(tiny_onnx):
    cfg = BenchConfig(model=str(tiny_onnx), engine="onnxruntime", shape=SHAPE, runs=5, timeout_s=0.05)
    [r] = run_bench([cfg])
    assert r.status == "failed" and "timed out after 0.05 s" in r.reason


def test_failure_reason_is_the_last_line_of_stderr_or_the_signal():
    assert _failure_reason("Traceback...\n  File x\nRuntimeError: boom\n\n", 1) == "RuntimeError: boom"
    assert _failure_reason("error: bad shape\n", 2) == "bad shape"
    assert _failure_reason("", -signal.SIGSEGV) == "worker killed by SIGSEGV"
    assert _failure_reason("", 3) == "worker exited with code 3 and no message"


def _row(engine: str, p50: float, mem: float, *, untuned=False, shape=SHAPE, ok=True) -> BenchResult:
    cfg = BenchConfig(model="m", engine=engine, shape=shape, untuned=untuned)
    return BenchResult(cfg, "ok" if ok else "failed", latency_ms={"p50": p50} if ok else {},
                       model_memory_mb=mem if ok else None)


def test_add_ratios_uses_the_native_anchor_and_the_same_engine_anchor():
    ort_anchor, ov_anchor = _row("onnxruntime", 10.0, 40.0, untuned=True), _row("openvino", 4.0, 80.0, untuned=True)
    ov = _row("openvino", 5.0, 60.0)
    other_shape = _row("openvino", 5.0, 60.0, shape=(1, 3, 64, 64))
    failed = _row("onnxruntime", 0, 0, ok=False)
    add_ratios([ort_anchor, ov_anchor, ov, other_shape, failed])
    assert ov.anchor_scheme == "ORT default (anchor)"
    assert ov.speedup == pytest.approx(2.0) and ov.memory_ratio == pytest.approx(1.5)
    assert ov.speedup_same_engine == pytest.approx(0.8)
    assert ov_anchor.speedup == pytest.approx(2.5)
    assert other_shape.speedup is None and failed.speedup is None


def test_without_the_native_anchor_openvino_default_is_the_reference():
    ov_anchor, ov = _row("openvino", 4.0, 80.0, untuned=True), _row("openvino", 2.0, 40.0)
    add_ratios([ov_anchor, ov])
    assert ov.anchor_scheme == "OpenVINO default (anchor)" and ov.speedup == pytest.approx(2.0)
