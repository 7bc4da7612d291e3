"""edgedeploy.optimize: graph passes, calibration checks, the accuracy guard, and one real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedeploy.errors import UserError, VerdictError
from edgedeploy.optimize import calibration, graph, optimize, report_path, sensitivity
from tests.conftest import build_tiny_onnx


def _run(path_or_model, x):
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _hardswish_model(opset: int = 13) -> onnx.ModelProto:
    """Conv → x*clip(x+3,0,6)/6 (PicoDet's spelling) → Conv, with BatchNorm after the first Conv."""
    rng = np.random.default_rng(0)
    c = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    inits = [c("w1", rng.standard_normal((4, 3, 3, 3)) * 0.5), c("w2", rng.standard_normal((2, 4, 1, 1))),
             c("three", [3.0]), c("zero", 0.0), c("six", 6.0), c("six_d", [6.0]),
             c("g", rng.random(4) + 0.5), c("b", rng.standard_normal(4)), c("m", rng.standard_normal(4) * 0.1),
             c("v", rng.random(4) + 0.5)]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"]),
             helper.make_node("Add", ["bn", "three"], ["a"]),
             helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
             helper.make_node("Mul", ["bn", "cl"], ["mu"]),
             helper.make_node("Div", ["mu", "six_d"], ["hs"]),
             helper.make_node("Conv", ["hs", "w2"], ["y"])]
    g = helper.make_graph(nodes, "hs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def test_graph_passes_fuse_and_keep_outputs():
    m = _hardswish_model(opset=11)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    ref = _run(m, x)
    out, rep = graph.optimize_graph(m)
    ops = [n.op_type for n in out.graph.node]
    assert ops == ["Conv", "HardSwish", "Conv"], ops  # BatchNorm folded, 4-node hardswish fused
    assert graph.opset(out) == graph.MIN_OPSET and rep.opset_before == 11
    assert rep.nodes_before == 7 and rep.nodes_after == 3
    assert all(n.name for n in out.graph.node)
    np.testing.assert_allclose(_run(out, x), ref, rtol=1e-4, atol=1e-5)


def test_no_float_weights_is_refused(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "w",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "relu.onnx")
    with pytest.raises(UserError, match="no float weights"):
        optimize(tmp_path / "relu.onnx", tmp_path / "out.onnx", engine="onnxruntime")
    assert not (tmp_path / "out.onnx").exists()


def _npy_folder(path: Path, n: int, shape) -> Path:
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        np.save(path / f"{i:03d}.npy", rng.standard_normal(shape).astype(np.float32))
    return path


def test_calibration_too_few_and_wrong_shape(tmp_path, tiny_onnx):
    with pytest.raises(UserError, match=r"3 usable sample\(s\); at least 8 are needed"):
        optimize(tiny_onnx, tmp_path / "a.onnx", engine="onnxruntime", calib=_npy_folder(tmp_path / "few", 3, (1, 3, 16, 16)))
    with pytest.raises(UserError, match=r"shape 1x1x16x16; the model's input 'input' is \?x3x\?x\?"):
        optimize(tiny_onnx, tmp_path / "b.onnx", engine="onnxruntime", calib=_npy_folder(tmp_path / "bad", 24, (1, 1, 16, 16)))
    with pytest.raises(UserError, match="missing: not found; expected an image folder"):
        optimize(tiny_onnx, tmp_path / "c.onnx", engine="onnxruntime", calib=str(tmp_path / "missing"))
    assert not any(tmp_path.glob("*.onnx"))


def test_engine_that_cannot_run_int8_onnx(tmp_path, tiny_onnx):
    with pytest.raises(UserError, match="engine paddle cannot run an optimised ONNX model"):
        optimize(tiny_onnx, tmp_path / "p.onnx", engine="paddle")
    with pytest.raises(UserError, match="did you mean 'int8'"):
        optimize(tiny_onnx, tmp_path / "p.onnx", precision="int9")


def _wide_onnx(path: Path) -> Path:
    """Conv(3→32) Relu Conv(32→32) Relu GlobalAveragePool Flatten Gemm(32→4): enough weight for INT8 to be smaller."""
    rng = np.random.default_rng(0)
    c = lambda name, shape, s: numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "fw", "fb"], ["output"])]
    g = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])],
                          [c("w1", (32, 3, 3, 3), 0.3), c("b1", (32,), 0.1), c("w2", (32, 32, 3, 3), 0.1),
                           c("b2", (32,), 0.1), c("fw", (32, 4), 1.0), c("fb", (4,), 0.1)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_int8_not_smaller_is_refused(tmp_path, tiny_onnx):
    """Never hand back something worse: a model whose INT8 file is larger than FP32 is not written (exit 1)."""
    calib = _npy_folder(tmp_path / "cal", 24, (1, 3, 16, 16))
    with pytest.raises(VerdictError, match="not smaller than the FP32 model.*nothing was written") as exc:
        optimize(tiny_onnx, tmp_path / "t.onnx", engine="onnxruntime", calib=calib, max_accuracy_drop=100,
                 latency_rounds=1, goal="size")
    assert exc.value.exit_code == 1 and exc.value.figures["size_after"] > exc.value.figures["size_before"]
    assert not list(tmp_path.glob("t*"))


def test_int8_within_budget_writes_model_and_report(tmp_path):
    src = _wide_onnx(tmp_path / "wide.onnx")
    calib = _npy_folder(tmp_path / "cal", 24, (1, 3, 16, 16))
    r = optimize(src, tmp_path / "out" / "tiny.int8.onnx", engine="onnxruntime", calib=calib,
                 max_accuracy_drop=100, latency_rounds=1, goal="size")  # size: no timing in unit tests
    out = tmp_path / "out" / "tiny.int8.onnx"
    assert r.size_ratio > 1 and out.exists() and report_path(out).exists()
    assert json.loads(report_path(out).read_text())["precision"] == "int8"
    assert r.metric == "top-1 agreement with FP32" and r.engine == "onnxruntime" and r.precision == "int8"
    assert "8 calibration / 16 held-out evaluation samples, disjoint, split by seed 0" in r.calibration
    assert r.accuracy_ci_points is not None and r.accuracy_ci_points > 0
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(out)).graph.node}
    assert set(r.latency_ms) >= {"ORT default FP32 (anchor)", "fp32 on onnxruntime", "int8 on onnxruntime"}
    # every candidate's accuracy is reported, the graph-optimised FP32 one too (the table's "accuracy after")
    assert set(r.candidate_accuracy) == {"fp32-graph on onnxruntime", "int8 on onnxruntime"}
    assert r.candidate_accuracy["fp32-graph on onnxruntime"] == pytest.approx(1.0)
    assert r.candidate_accuracy["int8 on onnxruntime"] == r.accuracy_after
    assert r.accuracy_before_by_engine == {"onnxruntime": r.accuracy_before}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_impossible_budget_writes_nothing_and_says_best(tmp_path):
    onnx.save(_hardswish_model(), tmp_path / "hs.onnx")  # rank-4 output: fidelity = 1 - relative L2 error
    calib = _npy_folder(tmp_path / "cal", 24, (1, 3, 8, 8))
    with pytest.raises(VerdictError, match=r"no int8 model meets max_accuracy_drop 0 points on output fidelity.*"
                                        r"best reached — onnxruntime: best .* with 1 layer\(s\) kept in float.*nothing was written"):
        optimize(tmp_path / "hs.onnx", tmp_path / "never.onnx", engine="onnxruntime", calib=calib,
                 max_accuracy_drop=0, latency_rounds=1)
    assert not (tmp_path / "never.onnx").exists() and not report_path(tmp_path / "never.onnx").exists()


def test_sensitivity_ranks_layers(tmp_path):
    from edgedeploy.optimize import quantize_ort

    src = build_tiny_onnx(tmp_path / "tiny.onnx")
    g, _ = graph.optimize_graph(onnx.load(str(src)))
    onnx.save(g, tmp_path / "g.onnx")
    feeds = [{"input": np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32)} for i in range(8)]
    cal = calibration.CalibrationSet(feeds, "test")
    quantize_ort.quantize_static(tmp_path / "g.onnx", tmp_path / "q.onnx", cal)
    errs = sensitivity.layer_errors(tmp_path / "g.onnx", tmp_path / "q.onnx", feeds)
    assert {"Conv", "Gemm"} <= {e.op for e in errs} <= set(sensitivity.QUANT_OPS)  # every quantized op type
    assert all(e.sqnr_db > 10 for e in errs if e.op in ("Conv", "Gemm"))  # INT8 of a healthy layer: well above 10 dB
    ranked = sensitivity.rank(errs)
    assert ranked[0].contribution >= ranked[-1].contribution
    assert sensitivity.float_counts(10, 0.5) == [1, 2, 4, 5]


@pytest.mark.integration
def test_pplcnet_int8_smaller_and_within_budget(tmp_path):
    out = tmp_path / "lcnet.int8.onnx"
    # goal size: ORT's INT8 kernels do not pay on PP-LCNet (SPEC: 8.2 ms vs 4.8 ms FP32), and the default
    # goal (faster than FP32) would refuse it there
    r = optimize("pplcnet-orientation", out, engine="onnxruntime", max_accuracy_drop=0.5, calib_samples=16,
                 eval_samples=20, latency_rounds=1, goal="size")
    assert out.exists() and r.size_ratio >= 3.0
    assert r.accuracy_drop_points <= 0.5 and r.accuracy_before == pytest.approx(1.0)
    assert r.metric == "accuracy" and r.precision == "int8"
    assert any(p.startswith("onnxslim") for p in r.passes) and r.graph_parity_max_abs_diff < 1e-3


def test_cli_command_json(tmp_path, edgedeploy_cli):
    src = _wide_onnx(tmp_path / "wide.onnx")
    calib = _npy_folder(tmp_path / "cal", 24, (1, 3, 16, 16))
    res = edgedeploy_cli(["optimize", str(src), "-o", str(tmp_path / "t.onnx"), "--engine", "onnxruntime",
                          "--calib", str(calib), "--max-accuracy-drop", "100", "--rounds", "1", "--json",
                          "--goal", "size"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["precision"] == "int8" and data["size_ratio"] > 0 and (tmp_path / "t.onnx").exists()
    res = edgedeploy_cli(["optimize", str(src), "-o", str(tmp_path / "u.onnx"), "--precision", "int4"])
    assert res.exit_code == 2 and "int4" in res.stderr and "\n" not in res.stderr.strip()


def test_fp16_halves_the_weights(tmp_path):
    src = _wide_onnx(tmp_path / "wide.onnx")
    calib = _npy_folder(tmp_path / "cal", 24, (1, 3, 16, 16))
    r = optimize(src, tmp_path / "h.onnx", engine="onnxruntime", precision="fp16", calib=calib,
                 max_accuracy_drop=1, latency_rounds=1, goal="size")
    assert r.precision == "fp16" and r.accuracy_drop_points <= 1
    types = {t.data_type for t in onnx.load(str(tmp_path / "h.onnx")).graph.initializer if len(t.dims)}
    assert onnx.TensorProto.FLOAT16 in types and onnx.TensorProto.FLOAT not in types


def test_cli_verdict_exits_1_with_one_line_and_figures(tmp_path, capsys):
    from edgedeploy.cli import main

    onnx.save(_hardswish_model(), tmp_path / "hs.onnx")
    calib = _npy_folder(tmp_path / "cal", 24, (1, 3, 8, 8))
    args = ["optimize", str(tmp_path / "hs.onnx"), "-o", str(tmp_path / "n.onnx"), "--engine", "onnxruntime",
            "--calib", str(calib), "--max-accuracy-drop", "0", "--rounds", "1"]
    assert main(args + ["--json"]) == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["written"] is False and data["max_accuracy_drop_points"] == 0 and "onnxruntime" in data["accuracy_before"]
    assert err.count("\n") == 1 and "nothing was written" in err and not (tmp_path / "n.onnx").exists()
