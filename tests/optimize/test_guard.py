"""The accuracy guard scores a model by its content: a file rewritten between mixed-precision steps is scored again."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgedeploy.optimize.guard import HeldOutScorer


def _linear(path, w: np.ndarray) -> None:
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "lin",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [numpy_helper.from_array(w.astype(np.float32), "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_a_rewritten_file_is_scored_again_not_served_from_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3))
    ref, step = tmp_path / "ref.onnx", tmp_path / "step.onnx"
    _linear(ref, w)
    feeds = [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(64)]
    scorer = HeldOutScorer(feeds, ref_path=ref, labels=None, source="test", threads=1)
    _linear(step, w)
    assert scorer(step, "onnxruntime") == 1.0
    _linear(step, -w)  # the same path, another model: every decision flips
    assert scorer(step, "onnxruntime") == 0.0
