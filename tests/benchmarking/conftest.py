"""A tiny ONNX image model built in code (Conv + Relu + GlobalAveragePool), for fast benchmark tests."""

from __future__ import annotations

import numpy as np
import pytest


def make_tiny_onnx(path, *, channels: int = 8, size: int = 32):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(channels, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, 1, 1])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """Path to the tiny model: input x [N, 3, 32, 32] (batch dynamic), output y [N, 8, 1, 1]."""
    return make_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")
