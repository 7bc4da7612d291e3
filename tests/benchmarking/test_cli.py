"""`edgedeploy bench` through edgedeploy.cli.main: JSON on stdout, files written, a bad shape is one line."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def app(edgedeploy_cli):
    return edgedeploy_cli


def test_bench_json_and_files(app, tiny_onnx, tmp_path):
    args = ["bench", str(tiny_onnx), "--engine", "onnxruntime", "--no-anchors", "--runs", "3", "--warmup", "0",
            "--shape", "32x32", "--json", "--csv", str(tmp_path / "r.csv"), "--markdown", str(tmp_path / "r.md")]
    out = app(args)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    [row] = data["results"]
    assert row["status"] == "ok" and row["config"]["shape"] == [1, 3, 32, 32] and row["latency_ms"]["runs"] == 3
    md = (tmp_path / "r.md").read_text().splitlines()
    assert (tmp_path / "r.csv").exists() and md[0].startswith("Method: ") and md[2].startswith("| model |")


def test_bench_refuses_a_shape_before_running_anything(app, tiny_onnx):
    out = app(["bench", str(tiny_onnx), "--shape", "64x64"])
    assert out.exit_code == 2 and "dimension 2 must be 32" in out.stderr
