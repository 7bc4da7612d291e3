"""doctor: findings with measured evidence; INT8-sensitive layers; a tampered deployment refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgedeploy.deploy import doctor
from edgedeploy.ingest import load_model


def test_sensitivity_finds_the_layer_with_an_outlier_weight(tiny_onnx, tmp_path):
    proto = onnx.load(str(tiny_onnx))
    w = next(i for i in proto.graph.initializer if i.name == "fc_w")
    arr = numpy_helper.to_array(w).copy()
    arr[0, 0] = 1000.0  # one outlier: per-tensor INT8 rounding wipes out every other weight
    w.CopyFrom(numpy_helper.from_array(arr, "fc_w"))
    path = tmp_path / "outlier.onnx"
    onnx.save(proto, str(path))
    rows = doctor.layer_sensitivity(load_model(path), (1, 3, 16, 16))
    assert rows[0]["op"] == "Gemm" and rows[0]["weight_sqnr_db"] < 25
    assert all(np.isfinite(r["activation_sqnr_db"]) for r in rows)


def test_diagnose_a_model(tiny_onnx):
    report = doctor.diagnose(str(tiny_onnx), shape="16x16", runs=3)
    checks = {f.check for f in report.findings}
    assert {"slow", "memory", "operators", "accuracy"} <= checks
    slow = [f for f in report.findings if f.check == "slow"]
    assert any("graph optimisation on:" in e for f in slow for e in f.evidence)
    assert all(f.evidence for f in report.findings)


@pytest.mark.parametrize("status", ["problem"])
def test_tampered_deployment_is_refused(tiny_onnx, tmp_path, status):
    from edgedeploy.deploy import manifest

    out = manifest.write(tmp_path / "d", model=load_model(tiny_onnx), resolved={"model": "x"}, record={})
    (out / "model.onnx").write_bytes(b"garbage")
    report = doctor.diagnose(str(out))
    assert report.problems == 1 and report.findings[0].status == status
    assert "model.onnx does not match" in report.findings[0].evidence[0]
