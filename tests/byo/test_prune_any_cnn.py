"""Pruning and distillation for any CNN: a classifier (Flatten/Gemm head), shared weights untied, progress
with an ETA, and a time budget that stops distillation and still reports."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")
pytest.importorskip("torch_pruning")

from edgedeploy import cards  # noqa: E402
from edgedeploy.ingest import from_torch  # noqa: E402
from edgedeploy.optimize import graph  # noqa: E402
from edgedeploy.optimize.prune import eta_reporter, prune_and_distill  # noqa: E402
from tests.byo.models import CARD, build, images, to_input  # noqa: E402


def _run(path, x):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_classifier_with_a_gemm_head_is_pruned_within_a_time_budget(tmp_path):
    from_torch(build("resnet"), card=cards.parse(CARD), out=tmp_path / "cls.onnx")
    g, _ = graph.optimize_graph(onnx.load(str(tmp_path / "cls.onnx")))
    assert {"Gemm", "Reshape"} <= {n.op_type for n in g.graph.node}
    onnx.save(g, str(tmp_path / "g.onnx"))
    x = to_input(images(8, 3)).numpy()
    lines = []
    r = prune_and_distill(tmp_path / "g.onnx", tmp_path / "p.onnx", [x], ratio=0.3, steps=100_000, batch=4,
                          say=lines.append, time_budget_s=1.0)
    assert r.macs_after < r.macs_before and r.params_after < r.params_before
    assert 0 < r.steps < 100_000 and "stopped by the 1 s time budget" in r.describe()
    assert lines[0].startswith("pruning: the original's outputs") and "distillation: 100000 steps" in lines
    assert any(line.startswith("distillation: time budget 1 s reached") for line in lines)
    assert _run(tmp_path / "p.onnx", x[:1]).shape == (1, 4)  # the classes stay


def test_shared_weights_are_untied_not_refused(tmp_path):
    """One bias initializer used by two convolutions (as an exporter may dedupe them): each gets its own."""
    rng = np.random.default_rng(0)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)  # noqa: E731
    n = helper.make_node
    nodes = [n("Conv", ["x", "w0", "b"], ["c0"], pads=[1, 1, 1, 1]), n("Relu", ["c0"], ["r0"]),
             n("Conv", ["r0", "w1", "b"], ["c1"], pads=[1, 1, 1, 1]), n("Relu", ["c1"], ["r1"]),
             n("Conv", ["r1", "w2"], ["y"])]
    gr = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])],
                           [w("w0", 16, 3, 3, 3), w("w1", 16, 16, 3, 3), w("b", 16), w("w2", 2, 16, 1, 1)])
    m = helper.make_model(gr, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "s.onnx"))
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    prune_and_distill(tmp_path / "s.onnx", tmp_path / "sp.onnx", [x], ratio=0.25, steps=3, batch=2)
    out = onnx.load(str(tmp_path / "sp.onnx"))
    biases = [node.input[2] for node in out.graph.node if node.op_type == "Conv" and len(node.input) > 2]
    assert len(set(biases)) == 2 and _run(tmp_path / "sp.onnx", x[:1]).shape == (1, 2, 16, 16)


def test_eta_lines_every_tenth_of_a_long_phase(monkeypatch):
    from edgedeploy.optimize import prune

    clock = iter(np.arange(0, 100, 1.0))  # one second per call: a 10-step phase takes ~10 s
    monkeypatch.setattr(prune.time, "perf_counter", lambda: float(next(clock)))
    lines = []
    step = eta_reporter(lines.append, "distillation", 10)
    for i in range(1, 11):
        step(i)
    assert lines[0] == "distillation: 10 steps" and len(lines) == 11
    assert lines[1] == "distillation: 10% (1/10 steps), 1 s elapsed, ETA 9 s" and lines[-1].startswith("distillation: 100%")
