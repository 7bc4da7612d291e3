"""Per-operator costs, the calibration fit, estimates with bands, the published check, the ranking."""

from __future__ import annotations

import pytest

from edgedeploy.hardware import estimate as est
from edgedeploy.hardware import published
from edgedeploy.hardware.recommend import recommend
from edgedeploy.modelinfo import node_costs


def test_node_costs_of_the_tiny_model(tiny_onnx):
    c = node_costs(tiny_onnx, shape=(1, 3, 32, 32))
    conv = next(n for n in c.nodes if n.op_type == "Conv")
    assert conv.flops == 2 * 8 * 32 * 32 * 27 and conv.kind == "dense"
    assert conv.weight_bytes == (8 * 27 + 8) * 4 and conv.activation_bytes == (3 + 8) * 32 * 32 * 4
    assert c.unknown == 0 and c.weight_bytes == (8 * 27 + 8 + 32 + 4) * 4
    assert c.peak_activation_bytes >= (3 + 8) * 32 * 32 * 4


def _points(coef):
    pts = []
    for i, (f, b, n) in enumerate([(1e8, 1e6, 50), (5e8, 2e7, 200), (2e9, 5e7, 400), (4e7, 3e6, 300),
                                   (9e8, 8e6, 120), (3e9, 9e7, 600)]):
        pts.append(est.Point(model=f"m{i}", shape=[1], flops=f, bytes=b, nodes=n, weight_bytes=b / 2,
                             peak_activation_bytes=n * 1e4, measured_ms=coef[0] * f + coef[1] * b + coef[2] * n,
                             measured_memory_bytes=b / 2 * 1.2 + n * 1e4 * 2 + 20e6))
    return pts


def test_fit_recovers_known_coefficients_and_states_its_error():
    from edgedeploy.hardware import local

    truth = (2e-8, 1e-7, 0.004)
    cal = est.fit(_points(truth), engine="onnxruntime", threads=1, machine=local())
    coef = est._fit_time([est.Point(**p) for p in cal.points])
    assert coef == pytest.approx(truth, rel=1e-3)
    assert cal.band < 1.1 and cal.c_node_ms == pytest.approx(0.004, rel=1e-3)
    assert cal.memory == pytest.approx([1.2, 2.0, 20e6], rel=1e-3)


def test_estimate_is_labelled_and_banded(tiny_onnx):
    from edgedeploy.hardware import local

    cal = est.fit(_points((2e-8, 1e-7, 0.004)), engine="onnxruntime", threads=1, machine=local())
    e = est.estimate(tiny_onnx, "local", shape=(1, 3, 32, 32), calibration=cal)
    assert e.latency_low_ms < e.latency_ms < e.latency_high_ms and e.calibrated and "learned on this machine" in e.method
    gpu = est.estimate(tiny_onnx, "jetson-nano", shape=(1, 3, 32, 32), precision="int8", calibration=cal)
    assert gpu.precision == "fp16" and "published latencies" in gpu.method and "nothing was measured" in gpu.method
    cpu = est.estimate(tiny_onnx, "raspberry-pi-5", shape=(1, 3, 32, 32), calibration=cal)
    assert cpu.unit.startswith("4x Cortex-A76") and "another CPU" in cpu.method


def test_published_check_is_leave_one_out():
    acc = published.accelerator_efficiency()
    assert 0 < acc.efficiency < 1 and acc.band > 1 and acc.n == 6
    rows = published.check(None)
    assert len(rows) == len(published.POINTS)
    assert all(r["error"] is not None for r in rows if r["unit"] == "accelerator")


def test_recommend_respects_the_power_budget(tiny_onnx):
    rows = recommend(tiny_onnx, latency_ms=10, power_w=5, shape=(1, 3, 32, 32))
    by = {r.device: r for r in rows}
    assert not by["intel-nuc"].feasible and any("> budget 5 W" in w for w in by["intel-nuc"].why)
    assert by["coral"].feasible and rows[0].feasible
    assert all(any(w.startswith("toolchain:") for w in r.why) for r in rows)


def test_estimate_states_achieved_vs_peak(tiny_onnx):
    e = est.estimate(tiny_onnx, "rk3588", shape=(1, 3, 32, 32), precision="int8", unit="npu")
    assert e.peak_gops == pytest.approx(6000)  # the NPU's published 6 TOPS INT8
    assert e.achieved_gops == pytest.approx(e.flops / (e.latency_ms * 1e-3) / 1e9)
    assert 0 < e.utilisation <= published.accelerator_efficiency().efficiency + 1e-9  # never above what the fit assumes
    assert e.to_dict()["utilisation"] == e.utilisation
    assert any(n.startswith("achieved vs peak (estimated, not measured): ") and "GOP/s int8" in n for n in e.notes)
