"""`bench A B` recognises that B was made from A by optimize and states B against A."""

from __future__ import annotations

import json
import shutil

import numpy as np

from edgedeploy.optimize import lineage, optimize
from tests.optimize.test_optimize import _npy_folder, _wide_onnx


def test_bench_reports_the_derived_model_against_its_source(tmp_path, capsys):
    from edgedeploy.cli import main

    src = _wide_onnx(tmp_path / "wide.onnx")
    out = tmp_path / "wide.int8.onnx"
    optimize(src, out, engine="onnxruntime", calib=_npy_folder(tmp_path / "cal", 24, (1, 3, 16, 16)),
             max_accuracy_drop=100, latency_rounds=1, goal="size")
    assert lineage.made_from(str(src), str(out)).precision == "int8"
    assert lineage.made_from(str(out), str(src)) is None
    moved = tmp_path / "moved.onnx"
    shutil.copy(src, moved)
    assert lineage.made_from(str(moved), str(out)) is not None  # same content: recognised after a copy
    other = _wide_onnx(tmp_path / "other.onnx")
    other.write_bytes(other.read_bytes() + b"\0")  # different bytes: not the source
    assert lineage.made_from(str(other), str(out)) is None
    capsys.readouterr()
    assert main(["bench", str(src), str(out), "--engine", "onnxruntime", "--no-anchors", "--runs", "3",
                 "--warmup", "1", "--json"]) == 0
    derived = json.loads(capsys.readouterr().out)["derived"]
    assert len(derived) == 1 and derived[0]["source"] == str(src) and derived[0]["derived"] == str(out)
    assert derived[0]["size_ratio"] > 1 and np.isfinite(derived[0]["speedup"]) and derived[0]["speedup"] > 0
