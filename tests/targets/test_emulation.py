"""ARM artefacts run under qemu-aarch64 with ORT's and ncnn's aarch64 builds, outputs checked against x86."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.targets import emulation

pytestmark = pytest.mark.skipif(emulation.unavailable() is not None,
                                reason=f"no aarch64 emulation here: {emulation.unavailable()}")


@pytest.mark.parametrize("engine", ["onnxruntime", "ncnn"])
def test_emulated_outputs_match_x86(engine, tiny_onnx, image_batch):
    with engines.load(tiny_onnx, engine="onnxruntime") as x86, engines.load(tiny_onnx, engine="ncnn") as nc:
        model = tiny_onnx if engine == "onnxruntime" else nc.param
        with emulation.EmulatedSession(model, engine=engine, like=x86) as arm:
            out = arm.run({"input": image_batch})["output"]
            assert arm.hello["machine"] == "aarch64" and "timings mean nothing" in arm.notes[0]
        np.testing.assert_allclose(out, x86.run({"input": image_batch})["output"], atol=1e-5, rtol=1e-4)


def test_bad_feeds_are_refused_like_on_the_host(tiny_onnx):
    from edgedeploy.errors import UserError

    with engines.load(tiny_onnx) as x86, emulation.EmulatedSession(tiny_onnx, like=x86) as arm, \
            pytest.raises(UserError, match="dimension 1 must be 3"):
        arm.run({"input": np.zeros((1, 4, 8, 8), np.float32)})


def test_multi_output_model_keeps_the_onnx_output_order_on_ncnn(tmp_path):
    """Outputs listed in another order than their layers run (as PicoDet's heads are)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["first"]), helper.make_node("Sigmoid", ["x"], ["second"]),
             helper.make_node("Neg", ["first"], ["third"])]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8])  # noqa: E731
    graph = helper.make_graph(nodes, "multi", [vi("x")], [vi("third"), vi("second"), vi("first")])
    path = tmp_path / "multi.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    with engines.load(path) as ref, engines.load(path, engine="ncnn") as nc, \
            emulation.EmulatedSession(nc.param, engine="ncnn", like=ref) as arm:
        want, got, host = ref.run(x), arm.run(x), nc.run(x)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)
        np.testing.assert_allclose(host[name], want[name], atol=1e-5)
