"""Targets are profiles: ISA, runtimes x precisions, memory; names resolved with a did-you-mean."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.hardware import estimate
from edgedeploy.hardware.targets import TARGETS, host_isa, target


def test_the_issue_targets_and_this_machine():
    assert set(TARGETS) == {"rk3588", "raspberry-pi-5", "jetson-nano", "jetson-orin-nano"}
    assert all(t.isa == "aarch64" and t.qemu_cpu for t in TARGETS.values())
    assert target("RPi5").key == "raspberry-pi-5" and target("orin_nano").key == "jetson-orin-nano"
    me = target("local")
    assert me.isa == host_isa() and me.native and "onnxruntime" in [r.engine for r in me.runtimes]
    assert {r.engine for r in target("rk3588").runtimes_for("int8")} == {"rknn", "onnxruntime"}


def test_unknown_target_suggests_the_nearest_and_a_device_without_a_toolchain_says_so():
    with pytest.raises(UserError, match=r"unknown target 'rk3589' \(did you mean 'rk3588'\?\); choose one of rk3588"):
        target("rk3589")
    with pytest.raises(UserError, match=r"'hailo-8' is a known device .* but not a deployment target"):
        target("hailo-8")


def test_a_precision_the_target_cannot_run_names_those_it_can():
    with pytest.raises(UserError) as err:
        target("jetson-nano").runtimes_for("bf16")
    assert str(err.value).startswith("target jetson-nano cannot run precision 'bf16': its engines run "
                                     "fp16: tensorrt, ncnn; fp32: tensorrt, onnxruntime, ncnn; int8: onnxruntime")


def test_a_model_too_large_for_the_target():
    with pytest.raises(UserError, match=r"needs 5722 MiB but jetson-nano has 3815 MiB"):
        target("jetson-nano").check_memory(6e9)
    target("rk3588").check_memory(1e12)  # memory not published (board-dependent): no check


def test_estimator_least_squares_is_non_negative_and_exact_when_it_can_be():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(estimate.nnls(a, a @ np.array([2.0, 3.0])), [2.0, 3.0], atol=1e-9)
    assert estimate.nnls(a, np.array([-1.0, 1.0, 0.0]))[0] == 0.0  # the unconstrained fit is negative there
