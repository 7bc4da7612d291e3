"""One entry point for ONNX, Paddle and PyTorch models; clear errors for anything else."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.errors import ConversionError, UserError
from edgedeploy.ingest import from_torch, load_model
from edgedeploy.ingest.paddle_convert import describe_failure, repair_scalar_concats


def test_onnx_file(tiny_onnx):
    m = load_model(tiny_onnx)
    assert m.format == "onnx" and m.onnx_path() == tiny_onnx and m.size_bytes() > 1000


def test_missing_file_says_what_was_expected(tmp_path):
    with pytest.raises(UserError, match=r"model '.*nope.onnx' not found: expected a path to an .onnx file"):
        load_model(tmp_path / "nope.onnx")


def test_zoo_like_typo_gets_a_suggestion():
    with pytest.raises(UserError, match=r"did you mean 'ppocrv6-det'"):
        load_model("ppocrv6-dte")


@pytest.mark.parametrize("content", [b"\x00\x01garbage" * 100, b""])
def test_not_a_model(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(UserError, match="not a valid ONNX model|empty graph"):
        load_model(bad)


def test_truncated_onnx(tmp_path, tiny_onnx):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny_onnx.read_bytes()[:300])
    with pytest.raises(UserError, match="not a valid ONNX model .* truncated"):
        load_model(cut)


def test_unknown_suffix(tmp_path):
    f = tmp_path / "weights.h5"
    f.write_bytes(b"x")
    with pytest.raises(UserError, match=r"not a model format edgedeploy reads \(suffix '.h5'\)"):
        load_model(f)


def test_paddle_model_by_file_and_by_directory(tiny_paddle):
    by_file = load_model(tiny_paddle)
    by_dir = load_model(tiny_paddle.parent)
    assert by_file.format == by_dir.format == "paddle"
    assert by_file.params == by_dir.params == tiny_paddle.with_suffix(".pdiparams")


def test_paddle_model_without_params(tmp_path, tiny_paddle):
    lonely = tmp_path / "m.pdmodel"
    lonely.write_bytes(tiny_paddle.read_bytes())
    with pytest.raises(UserError, match="has no parameters file: expected m.pdiparams beside it"):
        load_model(lonely)


def test_paddle_to_onnx_conversion_matches_native(tiny_paddle, image_batch):
    m = load_model(tiny_paddle)
    onnx_path = m.onnx_path()
    assert onnx_path.suffix == ".onnx" and onnx_path.exists()
    with engines.load(m, engine="paddle") as native, engines.load(onnx_path, engine="onnxruntime") as converted:
        np.testing.assert_allclose(converted.run({"input": image_batch})["output"],
                                   native.run({"input": image_batch})["output"], atol=1e-5, rtol=1e-4)


def test_conversion_failure_names_the_operator():
    log = (
        "[Paddle2ONNX] Start export pd_op.conv2d, op_id: 7\n[Paddle2ONNX] Finish export pd_op.conv2d, op_id: 7\n"
        "[Paddle2ONNX] Start export pd_op.nearest_interp, op_id: 8\n"
        "\x1b[0;31m2026 [ERROR]\tFailed to convert PaddlePaddle model: (Unimplemented) the 0th elementwise MUST be "
        "ir::FloatAttribute\n  [Hint: Expected ...] (at parser.cc:814)\n.\x1b[0m\n"
    )
    text = describe_failure("det", log)
    assert "failed at operator pd_op.nearest_interp (op 8)" in text
    assert "MUST be ir::FloatAttribute" in text and "Hint" not in text


def test_scalar_concat_repair(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    # Reshape target built as Concat(scalar, [1]): what paddle2onnx 2.1 emits and ORT refuses.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),  # rank-0
        helper.make_node("Concat", ["n", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("zero", TensorProto.INT64, [], [0]), helper.make_tensor("minus1", TensorProto.INT64, [1], [-1])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    assert repair_scalar_concats(path) == 1
    with engines.load(path) as s:
        assert s.run({"x": np.ones((2, 3, 4), np.float32)})["y"].shape == (2, 12)


torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def test_torch_module_exports_and_matches(tmp_path):
    net = TinyNet()
    x = torch.randn(1, 3, 16, 16)
    m = from_torch(net, x, name="tiny", input_names=["input"], output_names=["output"],
                   dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}}, out=tmp_path / "tiny.onnx")
    with engines.load(m) as s:
        got = s.run({"input": x.numpy()})["output"]
    np.testing.assert_allclose(got, net(x).detach().numpy(), atol=1e-5)


class Unexportable(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.svd(x)[1]


def test_torch_export_failure_names_the_operator(tmp_path):
    with pytest.raises(ConversionError, match=r"could not convert bad at opset 17: operator .*svd"):
        from_torch(Unexportable(), torch.randn(3, 3), name="bad", out=tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()
