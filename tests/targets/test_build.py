"""build_artifacts: only what the target runs, every figure labelled with how it was obtained."""

from __future__ import annotations

import pytest

from edgedeploy.errors import UserError
from edgedeploy.targets import emulation
from edgedeploy.targets.artifact import Artifact, Context, Figure
from edgedeploy.targets.build import ARM_RULE, _choose_primary, _withdraw_over_budget, build_artifacts


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



def test_an_artefact_over_the_budget_is_not_shipped_beside_the_primary(tmp_path):
    def art(precision, value):
        d = tmp_path / f"jetson-tensorrt-{precision}"
        d.mkdir()
        (d / "model.onnx").write_bytes(b"x")
        return Artifact(target="jetson-orin-nano", engine="tensorrt", unit="gpu", precision=precision,
                        files=[f"{d.name}/model.onnx"], accuracy=Figure(value, "stand-in"),
                        reference=Figure(0.937, "measured"))

    arts = [art("int8", 0.0), art("fp16", 0.937)]  # the QDQ PicoDet's stand-in figure before the recipe was fixed
    _choose_primary(arts, budget=0.01)
    _withdraw_over_budget(arts, tmp_path, 0.01)
    assert [a.primary for a in arts] == [False, True]
    assert arts[0].files == [] and not (tmp_path / "jetson-tensorrt-int8").exists()
    assert any(n.startswith("not shipped: 0.000 against FP32 0.937 (stand-in), a 93.7% drop") for n in arts[0].notes)
    assert arts[0].accuracy.value == 0.0  # the figure stays in the manifest, with the reason
    assert (tmp_path / arts[1].files[0]).exists()


def test_an_accelerator_over_the_budget_falls_back_to_a_more_precise_build(tiny_onnx, tmp_path, monkeypatch):
    from edgedeploy.hardware.targets import target
    from edgedeploy.targets import build

    built = []

    def fake_trt(ctx, r, p):  # the builder's figures, as a real build on a collapsing model reports them
        built.append(p)
        return Artifact(target="jetson-orin-nano", engine="tensorrt", unit="gpu", precision=p, files=[f"{p}/m"],
                        accuracy=Figure({"int8": 0.0, "fp16": 0.936, "fp32": 0.937}[p], "stand-in"),
                        reference=Figure(0.937, "measured"))

    monkeypatch.setitem(build._BUILDERS, ("tensorrt", "int8"), fake_trt)
    monkeypatch.setitem(build._BUILDERS, ("tensorrt", "fp16"), fake_trt)
    t = target("jetson-orin-nano")
    runtimes = [r for r in t.runtimes if r.engine == "tensorrt"]
    ctx = Context(t, None, None, (1, 3, 32, 32), None, tmp_path, None, None, lambda what: None, 0.01)
    arts = [fake_trt(ctx, runtimes[0], "int8")]
    build._fall_back(ctx, arts, runtimes)
    assert built == ["int8", "fp16"]  # fp16 was not asked; fp32 not needed once fp16 is within the budget
    assert arts[1].notes[-1].startswith("fallback: int8 is over the accuracy budget (1.0%)")
