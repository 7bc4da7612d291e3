"""build_artifacts: only what the target runs, every figure labelled with how it was obtained."""

from __future__ import annotations

import pytest

from edgedeploy.errors import UserError
from edgedeploy.targets import emulation
from edgedeploy.targets.build import ARM_RULE, Artifact, Figure, _choose_primary, build_artifacts


@pytest.mark.skipif(emulation.unavailable() is not None, reason=f"no aarch64 emulation here: {emulation.unavailable()}")
def test_raspberry_pi_5_gets_ort_and_ncnn_artefacts_checked_on_aarch64(tiny_onnx, tmp_path):
    arts = build_artifacts("rpi5", tiny_onnx, None, tmp_path, precisions=["fp32"], shape=(1, 3, 32, 32))
    assert [(a.engine, a.precision) for a in arts] == [("onnxruntime", "fp32"), ("ncnn", "fp32")]
    for a in arts:
        assert a.agreement.how == "emulated" and a.agreement.value < 1e-4
        assert a.latency_ms.how == "estimated" and a.accuracy is None  # a model without a task: no metric
        assert all((tmp_path / f).stat().st_size > 0 for f in a.files)
    assert [a.primary for a in arts] == [True, False] and ARM_RULE in arts[0].notes


def test_the_target_decides_what_is_searched(tiny_onnx, tmp_path):
    with pytest.raises(UserError, match="target raspberry-pi-5 cannot run precision 'bf16'"):
        build_artifacts("raspberry-pi-5", tiny_onnx, None, tmp_path, precisions=["bf16"], shape=(1, 3, 32, 32))
    with pytest.raises(UserError, match="dynamic input shape"):
        build_artifacts("raspberry-pi-5", tiny_onnx, None, tmp_path, precisions=["fp32"])


def test_primary_arm_artefact_by_the_stated_rule():
    def art(engine, value):
        return Artifact(target="t", engine=engine, unit="cpu", precision="fp32", files=["f"],
                        accuracy=Figure(value, "emulated"))

    tie = [art("ncnn", 0.951), art("onnxruntime", 0.95)]
    _choose_primary(tie)
    assert [a.primary for a in tie] == [False, True]  # within half a point: onnxruntime
    better = [art("ncnn", 0.97), art("onnxruntime", 0.95)]
    _choose_primary(better)
    assert [a.primary for a in better] == [True, False]


def test_npu_primary_is_the_least_precise_within_the_budget():
    def art(precision, value):
        return Artifact(target="rk3588", engine="rknn", unit="npu", precision=precision, files=["f"],
                        accuracy=Figure(value, "simulated"), reference=Figure(0.937, "measured"))

    picodet = [art("int8", 0.808), art("fp16", 0.932)]  # the measured PicoDet layout figures
    _choose_primary(picodet, budget=0.01)
    assert [a.primary for a in picodet] == [False, True]
    lcnet = [art("int8", 0.937), art("fp16", 0.937)]
    _choose_primary(lcnet, budget=0.01)
    assert [a.primary for a in lcnet] == [True, False]

