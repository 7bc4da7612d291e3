"""Pruning with distillation: the ONNX → torch graph is exact, pruning removes work, the student learns."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedeploy.errors import UserError, VerdictError

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from edgedeploy.optimize.prune import prune_and_distill  # noqa: E402
from edgedeploy.optimize.torch_graph import TorchGraph, write_back  # noqa: E402


def _run(path_or_model, x):
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _net(opset: int = 14) -> onnx.ModelProto:
    """A small detector-shaped net with the operators of PP-OCR det: a SAME-padded stride-2 conv,
    a SAME max pool and a concat (the HGNet stem), a residual add, squeeze-excitation with
    HardSigmoid, GELU spelt with Erf, nearest Resize, and a ConvTranspose head ending in Sigmoid."""
    rng = np.random.default_rng(0)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)  # noqa: E731
    c = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    inits = [w("w0", 16, 3, 3, 3), w("b0", 16), w("w1", 16, 16, 2, 2), w("w2", 32, 32, 1, 1), w("b2", 32),
             w("w3", 32, 32, 3, 3), w("wse", 32, 32, 1, 1), w("bse", 32), w("w4", 32, 32, 3, 3),
             w("wt", 32, 1, 2, 2), c("half", 0.5), c("one", 1.0), c("sqrt2", np.sqrt(2.0)),
             c("scales", [1, 1, 2, 2]), c("roi", np.zeros(0))]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w0", "b0"], ["c0"], strides=[2, 2], auto_pad="SAME_UPPER", kernel_shape=[3, 3]),
        n("Relu", ["c0"], ["r0"]),
        n("MaxPool", ["r0"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER"),
        n("Conv", ["r0", "w1"], ["c1"], pads=[0, 0, 1, 1]),
        n("Concat", ["mp", "c1"], ["cat"], axis=1),
        n("Conv", ["cat", "w2", "b2"], ["c2"]),
        n("Div", ["c2", "sqrt2"], ["g0"]), n("Erf", ["g0"], ["g1"]), n("Add", ["g1", "one"], ["g2"]),
        n("Mul", ["c2", "g2"], ["g3"]), n("Mul", ["g3", "half"], ["gelu"]),
        n("Conv", ["gelu", "w3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("GlobalAveragePool", ["c3"], ["gap"]), n("Conv", ["gap", "wse", "bse"], ["se"]),
        n("HardSigmoid", ["se"], ["hsig"], alpha=0.2, beta=0.5), n("Mul", ["c3", "hsig"], ["sed"]),
        n("Resize", ["sed", "roi", "scales"], ["up"], mode="nearest"),
        n("Add", ["up", "gelu"], ["res"]),
        n("Conv", ["res", "w4"], ["c4"], pads=[1, 1, 1, 1]), n("Relu", ["c4"], ["r4"]),
        n("ConvTranspose", ["r4", "wt"], ["ct"], strides=[2, 2], kernel_shape=[2, 2]),
        n("Sigmoid", ["ct"], ["y"]),
    ]
    g = helper.make_graph(nodes, "det_like", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "h", "w"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def test_torch_graph_runs_the_onnx_graph_exactly_and_writes_back(tmp_path):
    m = _net()
    tg = TorchGraph(m).eval()
    for size in (64, 96):
        x = np.random.default_rng(size).standard_normal((1, 3, size, size)).astype(np.float32)
        with torch.no_grad():
            mine = tg(torch.from_numpy(x)).numpy()
        assert np.abs(mine - _run(m, x)).max() < 1e-4
    with torch.no_grad():  # new weights go back into the same graph
        tg.convs["n0"].weight.mul_(0.5)
    back = write_back(tg, m)
    assert [n.op_type for n in back.graph.node] == [n.op_type for n in m.graph.node]
    x = np.random.default_rng(7).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        assert np.abs(_run(back, x) - tg(torch.from_numpy(x)).numpy()).max() < 1e-4
    assert np.abs(_run(back, x) - _run(m, x)).max() > 1e-3


def test_per_channel_constant_outside_convolutions_is_refused():
    m = _net()
    m.graph.initializer.append(numpy_helper.from_array(np.ones((1, 32, 1, 1), np.float32), "scale"))
    for n in m.graph.node:
        if n.output[0] == "res":
            n.input[1] = "gelu_s"
    m.graph.node.insert(11, helper.make_node("Mul", ["gelu", "scale"], ["gelu_s"]))
    with pytest.raises(UserError, match="'scale' is a per-channel constant"):
        TorchGraph(m).check_prunable()


def test_unsupported_operator_is_named():
    m = _net()
    m.graph.node.append(helper.make_node("LSTM", ["y"], ["z"]))
    with pytest.raises(UserError, match="LSTM"):
        TorchGraph(m)


def test_prune_removes_work_and_the_student_learns_the_teacher(tmp_path):
    src = tmp_path / "net.onnx"
    onnx.save(_net(), str(src))
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((1, 3, 128, 128)).astype(np.float32) for _ in range(8)]
    out = tmp_path / "pruned.onnx"
    rep = prune_and_distill(src, out, inputs, ratio=0.5, steps=60, batch=4, crop=64, lr=3e-3)
    assert rep.macs_after < 0.6 * rep.macs_before and rep.params_after < rep.params_before
    assert rep.loss_last < rep.loss_first
    x = rng.standard_normal((1, 3, 96, 96)).astype(np.float32)
    assert _run(out, x).shape == (1, 1, 96, 96)
    assert len(onnx.load(str(out)).graph.node) == len(_net().graph.node)  # the same graph, fewer channels
    assert "prune 50% of channels" in rep.describe() and json.dumps(rep.to_dict())


def test_prune_ratio_out_of_range_is_refused(tmp_path):
    src = tmp_path / "net.onnx"
    onnx.save(_net(), str(src))
    with pytest.raises(UserError, match="fraction of channels"):
        prune_and_distill(src, tmp_path / "p.onnx", [np.zeros((1, 3, 64, 64), np.float32)], ratio=1.5)


def test_optimize_prunes_then_guards_accuracy_against_the_original(tmp_path):
    from edgedeploy.optimize import optimize

    src = tmp_path / "net.onnx"
    onnx.save(_net(), str(src))
    calib = tmp_path / "cal"
    calib.mkdir()
    rng = np.random.default_rng(2)
    for i in range(8):
        np.save(calib / f"{i}.npy", rng.standard_normal((1, 3, 64, 64)).astype(np.float32))
    r = optimize(src, tmp_path / "p.onnx", engine="onnxruntime", precision="fp32", calib=str(calib), prune=0.5,
                 distill_steps=20, max_accuracy_drop=100.0, latency_rounds=1)
    assert any(p.startswith("prune 50% of channels") for p in r.passes)
    assert r.size_after < 0.6 * r.size_before  # half the channels: about a quarter of the weights
    with pytest.raises(UserError, match="fraction of channels"):
        optimize(src, tmp_path / "q.onnx", engine="onnxruntime", precision="fp32", calib=str(calib), prune=0.95)
    assert not (tmp_path / "q.onnx").exists()
    with pytest.raises(VerdictError, match="at FP32 already"):  # pruning alone over budget: no INT8 search
        optimize(src, tmp_path / "q.onnx", engine="onnxruntime", precision="fp32", calib=str(calib), prune=0.8,
                 distill_steps=1, max_accuracy_drop=0.0, latency_rounds=1)
    assert not (tmp_path / "q.onnx").exists()


def _w(rng, name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)


def _classifier() -> onnx.ModelProto:
    """PP-LCNet's shape in small: Conv + BatchNormalization (un-fused, as exported), GlobalAveragePool, a flatten
    Reshape to (-1, features), a MatMul head with an Add bias, Softmax; dynamic batch."""
    rng = np.random.default_rng(3)
    bn = lambda p, c: [numpy_helper.from_array(v.astype(np.float32), f"{p}_{k}") for k, v in  # noqa: E731
                       zip("sbmv", (1 + 0.1 * rng.standard_normal(c), 0.1 * rng.standard_normal(c),
                                    0.1 * rng.standard_normal(c), 1 + rng.random(c)))]
    inits = [_w(rng, "w0", 16, 3, 3, 3), *bn("bn0", 16), _w(rng, "w1", 32, 16, 3, 3), *bn("bn1", 32),
             _w(rng, "fc", 32, 4), _w(rng, "fcb", 4), numpy_helper.from_array(np.array([-1, 32], np.int64), "flat")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             n("BatchNormalization", ["c0", "bn0_s", "bn0_b", "bn0_m", "bn0_v"], ["b0"]), n("Relu", ["b0"], ["r0"]),
             n("Conv", ["r0", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             n("BatchNormalization", ["c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["b1"]), n("HardSwish", ["b1"], ["h1"]),
             n("GlobalAveragePool", ["h1"], ["gap"]), n("Reshape", ["gap", "flat"], ["f"]),
             n("MatMul", ["f", "fc"], ["mm"]), n("Add", ["mm", "fcb"], ["logits"]), n("Softmax", ["logits"], ["y"], axis=-1)]
    g = helper.make_graph(nodes, "cls_like", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def _detector() -> onnx.ModelProto:
    """PicoDet's shape in small: a static 1x3x128x128 input, a shared trunk, two levels each with its own head conv
    whose output is Split into sigmoid scores and box logits, Reshape (batch first) and Transpose: four outputs."""
    rng = np.random.default_rng(4)
    inits = [_w(rng, "w0", 16, 3, 3, 3), _w(rng, "w1", 32, 16, 3, 3), _w(rng, "w2", 32, 32, 3, 3),
             _w(rng, "t1", 32, 32, 3, 3), _w(rng, "t2", 32, 32, 3, 3), _w(rng, "h1", 6, 32, 1, 1),
             _w(rng, "h2", 6, 32, 1, 1), numpy_helper.from_array(np.array([2, 4], np.int64), "sizes"),
             numpy_helper.from_array(np.array([1, 2, -1], np.int64), "s_shape"),
             numpy_helper.from_array(np.array([1, 4, -1], np.int64), "b_shape")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]), n("Relu", ["c0"], ["r0"]),
             n("Conv", ["r0", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]), n("Relu", ["c1"], ["p1"]),
             n("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]), n("Relu", ["c2"], ["p2"])]
    outs = []
    for lvl, feat, size in ((1, "p1", 32 * 32), (2, "p2", 16 * 16)):
        nodes += [n("Conv", [feat, f"t{lvl}"], [f"tc{lvl}"], pads=[1, 1, 1, 1]), n("Relu", [f"tc{lvl}"], [f"tr{lvl}"]),
                  n("Conv", [f"tr{lvl}", f"h{lvl}"], [f"hc{lvl}"]),
                  n("Split", [f"hc{lvl}", "sizes"], [f"sc{lvl}", f"bx{lvl}"], axis=1),
                  n("Sigmoid", [f"sc{lvl}"], [f"sg{lvl}"]),
                  n("Reshape", [f"sg{lvl}", "s_shape"], [f"sr{lvl}"]), n("Reshape", [f"bx{lvl}", "b_shape"], [f"br{lvl}"]),
                  n("Transpose", [f"sr{lvl}"], [f"scores{lvl}"], perm=[0, 2, 1]),
                  n("Transpose", [f"br{lvl}"], [f"boxes{lvl}"], perm=[0, 2, 1])]
        outs += [helper.make_tensor_value_info(f"scores{lvl}", TensorProto.FLOAT, [1, size, 2]),
                 helper.make_tensor_value_info(f"boxes{lvl}", TensorProto.FLOAT, [1, size, 4])]
    g = helper.make_graph(nodes, "det_head_like",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 128, 128])], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _run_all(path_or_model, x):
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


def test_classifier_with_batchnorm_matmul_head_and_softmax_is_pruned(tmp_path):
    from edgedeploy.optimize import graph

    m = _classifier()
    tg = TorchGraph(graph.optimize_graph(m)[0]).eval()  # BatchNorm folded by the graph cleaning
    x = np.random.default_rng(5).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        assert np.abs(tg(torch.from_numpy(x)).numpy() - _run(m, x)).max() < 1e-5
    src, out = tmp_path / "cls.onnx", tmp_path / "p.onnx"
    onnx.save(m, str(src))
    lines = []
    rep = prune_and_distill(src, out, [x], ratio=0.5, steps=5, batch=2, say=lines.append)
    assert any("cleaning the graph first (BatchNormalization)" in line for line in lines)
    assert rep.macs_after < rep.macs_before
    pruned = onnx.load(str(out))
    assert "BatchNormalization" not in {n.op_type for n in pruned.graph.node}
    y = _run(out, x[:2])  # the flatten keeps a free batch
    assert y.shape == (2, 4) and np.allclose(y.sum(1), 1.0, atol=1e-5)


def test_matmul_of_two_computed_tensors_is_refused():
    from edgedeploy.optimize import graph

    m = graph.optimize_graph(_classifier())[0]
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    mm.input[1] = "f"
    with pytest.raises(UserError, match="MatMul .* multiplies by a computed tensor"):
        TorchGraph(m)


def test_detector_head_split_reshape_transpose_four_outputs(tmp_path):
    m = _detector()
    tg = TorchGraph(m).eval()
    x = np.random.default_rng(6).standard_normal((1, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        mine = tg(torch.from_numpy(x))
    assert all(np.allclose(a.numpy(), b, rtol=1e-4, atol=1e-4) for a, b in zip(mine, _run_all(m, x)))
    steps = [s for s in tg.steps if s[4] is not None]
    key = {s[2][0]: s[4] for s in steps}  # output tensor -> module key
    assert tg.fixed_channel_modules() == {key["hc1"], key["hc2"]}  # the Split's inputs keep their channels
    assert tg.head_modules() == {key[k] for k in ("c2", "tc1", "hc1", "tc2", "hc2")}  # what reaches one level only
    src, out = tmp_path / "det.onnx", tmp_path / "p.onnx"
    onnx.save(m, str(src))
    rng = np.random.default_rng(7)
    lines = []
    rep = prune_and_distill(src, out, [rng.standard_normal((1, 3, 128, 128)).astype(np.float32) for _ in range(3)],
                            ratio=0.5, steps=4, batch=2, say=lines.append)
    assert any("the student learns on whole inputs" in line for line in lines)  # outputs not aligned with the input
    assert rep.macs_after < rep.macs_before
    assert [a.shape for a in _run_all(out, x)] == [(1, 1024, 2), (1, 1024, 4), (1, 256, 2), (1, 256, 4)]
    kept = tmp_path / "k.onnx"
    rep_head = prune_and_distill(src, kept, [x], ratio=0.5, steps=1, batch=1, keep_head=True)
    assert rep.macs_after < rep_head.macs_after < rep_head.macs_before
