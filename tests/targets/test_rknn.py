"""RK3588: ONNX → .rknn with RKNN-Toolkit2 in its own venv, checked on the toolkit's simulator."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.targets import rknn

pytestmark = pytest.mark.skipif(rknn.unavailable() is not None, reason=f"RKNN skipped: {rknn.unavailable()}")


def test_int8_rknn_on_the_simulator_agrees_with_fp32(tiny_onnx, tmp_path):
    rng = np.random.default_rng(0)
    calib = [{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(8)]
    x = calib[0]
    with engines.load(tiny_onnx) as fp32, rknn.RknnSession(tiny_onnx, tmp_path / "m.rknn", shapes=[[1, 3, 32, 32]],
                                                          like=fp32, calib=calib) as s:
        assert (tmp_path / "m.rknn").stat().st_size > 0 and "simulated" in s.notes[0]
        out, ref = s.run(x)["output"], fp32.run(x)["output"]
    assert out.shape == ref.shape == (1, 4)
    np.testing.assert_allclose(out, ref, atol=0.05)


def test_int8_without_calibration_data_is_refused(tiny_onnx, tmp_path):
    with engines.load(tiny_onnx) as fp32, pytest.raises(UserError, match="RKNN INT8 needs calibration data"):
        rknn.RknnSession(tiny_onnx, tmp_path / "m.rknn", shapes=[[1, 3, 32, 32]], like=fp32)


def test_a_model_the_converter_rejects_names_the_step_and_the_fallback(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Unique", ["x"], ["y"])], "u",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    path = tmp_path / "unique.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with engines.load(path) as fp32, pytest.raises(UserError) as err:
        rknn.RknnSession(path, tmp_path / "u.rknn", shapes=[[1, 8]], like=fp32, dtype="fp16")
    assert "RKNN-Toolkit2" in str(err.value) and "failed" in str(err.value) and "fallback" in str(err.value)
