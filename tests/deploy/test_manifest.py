"""The deployment directory: written atomically, verified before it runs, the tampered file named."""

from __future__ import annotations

import json

import pytest

from edgedeploy.deploy import manifest
from edgedeploy.errors import UserError
from edgedeploy.ingest import load_model


def test_write_then_verify_then_tamper(tmp_path, tiny_onnx):
    out = manifest.write(tmp_path / "dep", model=load_model(tiny_onnx), resolved={"model": "x"},
                         record={"chosen": {"latency_ms": {"p50": 1.0}}})
    m = manifest.verify(out)
    assert set(m["files"]) == {"model.onnx", "deployment.yaml"} and m["engines"]["onnxruntime"]
    assert json.loads((out / "manifest.json").read_text())["chosen"]["latency_ms"]["p50"] == 1.0
    assert not list(tmp_path.glob(".dep*")), "no temporary directory left behind"
    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(UserError, match="model.onnx does not match manifest.json .* refusing to run"):
        manifest.verify(out)
    (out / "deployment.yaml").unlink()
    with pytest.raises(UserError, match="deployment.yaml is missing"):
        manifest.verify(out)


def test_refuses_to_overwrite_a_directory_that_is_not_a_deployment(tmp_path, tiny_onnx):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="is not a deployment directory"):
        manifest.write(tmp_path, model=load_model(tiny_onnx), resolved={}, record={})
    with pytest.raises(UserError, match="no manifest.json"):
        manifest.verify(tmp_path)
