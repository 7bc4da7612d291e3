"""The CLI: --json everywhere, tables for people, one line and a non-zero exit for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    return lines[0]


def test_help_lists_the_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("info", "run", "engines", "demo", "zoo"):
        assert command in out


def test_engines_json(capsys):
    code, out, _ = run_cli(capsys, "engines", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["engine"] for r in rows] == list(engines.ENGINES)
    assert all(r["installed"] == engines.available(r["engine"]) for r in rows)


def test_run_json_on_a_tiny_model(capsys, tiny_onnx):
    code, out, _ = run_cli(capsys, "run", str(tiny_onnx), "--shape", "2x3x16x16", "--runs", "3", "--json")
    result = json.loads(out)
    assert code == 0 and result["engine"] == "onnxruntime"
    assert result["outputs"][0]["shape"] == [2, 4]
    assert 0 < result["latency_ms"]["min"] <= result["latency_ms"]["median"] <= result["latency_ms"]["max"]


def test_run_with_npy_input_and_saved_outputs(capsys, tiny_onnx, tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = run_cli(capsys, "run", str(tiny_onnx), "--input", f"input={tmp_path / 'x.npy'}", "--engine",
                           "openvino" if engines.available("openvino") else "onnxruntime",
                           "--save", str(tmp_path / "out.npz"), "--runs", "1")
    assert code == 0 and "latency: median" in out
    saved = np.load(tmp_path / "out.npz")["output"]
    assert saved.shape == (1, 4) and np.isclose(saved.sum(), 1.0, atol=1e-5)


def test_info_table_and_json(capsys, tiny_onnx):
    code, out, _ = run_cli(capsys, "info", str(tiny_onnx), "--shape", "1x3x32x32", "--json")
    info = json.loads(out)
    # Conv 3→8 3x3 on 32x32: 8*32*32*27 MACs; Gemm 8→4: 32 MACs; FLOPs = 2 x MACs.
    assert info["flops"] == 2 * (8 * 32 * 32 * 27 + 32)
    assert info["parameters"] == 8 * 27 + 8 + 32 + 4 and info["op_histogram"]["Conv"] == 1
    assert info["engines"]["onnxruntime"] == "yes" and info["engines"]["paddle"].startswith("paddle runs paddle")
    code, out, _ = run_cli(capsys, "info", str(tiny_onnx))
    assert code == 0 and "operators" in out and "Conv" in out


@pytest.mark.parametrize("argv, expected", [
    (["run", "/no/such/model.onnx"], "model '/no/such/model.onnx' not found"),
    (["run", "ppocrv6-dte"], "did you mean 'ppocrv6-det'"),
    (["info", "ppocrv6-dte"], "did you mean 'ppocrv6-det'"),
    (["zoo", "fetch", "picodet"], "unknown zoo model 'picodet'"),
    (["run", "TINY", "--engine", "tensorrt"], "'tensorrt' is not one of 'onnxruntime'"),
    (["run", "TINY", "--engine", "openvno"], "did you mean 'openvino'"),
    (["run", "TINY", "--shape", "1x3xabc"], "--shape '1x3xabc' is not a shape"),
    (["run", "TINY", "--shape", "1x4x8x8"], "dimension 1 must be 3"),
    (["run", "TINY"], "input shape is dynamic"),
    (["run", "TINY", "--input", "missing.npy"], "missing.npy not found; expected a .npy file"),
    (["run", "TINY", "--input", "BADNPY"], "is not a .npy array"),
    (["run", "TINY", "--device", "gpu"], "--device gpu: onnxruntime sees no GPU on this machine"),
    (["run", "TINY", "--engine", "paddle"], "cannot run tiny on paddle: paddle runs paddle models only"),
    (["--log-level", "loud", "engines"], "--log-level 'loud'"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, tiny_onnx, tmp_path, argv, expected):
    if "--device" in argv and engines.gpu_available("onnxruntime"):
        pytest.skip("this machine has a GPU")
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"not numpy")
    argv = [str(tiny_onnx) if a == "TINY" else str(bad_npy) if a == "BADNPY" else a for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code != 0
    assert expected in one_line_error(err)


def test_truncated_model_file(capsys, tmp_path, tiny_onnx):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny_onnx.read_bytes()[:200])
    code, _, err = run_cli(capsys, "run", str(cut))
    assert code == 2 and "is not a valid ONNX model" in one_line_error(err)


def test_missing_engine_is_one_line_with_install_command(capsys, monkeypatch, tiny_onnx):
    fake = engines.EngineSpec(**{**engines.spec("openvino").__dict__, "package": "edgedeploy_no_such_sdk"})
    monkeypatch.setitem(engines.ENGINES, "openvino", fake)
    code, _, err = run_cli(capsys, "run", str(tiny_onnx), "--engine", "openvino", "--shape", "1x3x8x8")
    assert code == 2 and "pip install 'edgedeploy[openvino]'" in one_line_error(err)


def test_eval_task_choices_are_the_runners_tasks():
    from edgedeploy.cli.eval import EvalTask
    from edgedeploy.evaluation.runner import TASKS

    assert [t.value for t in EvalTask] == list(TASKS)


def test_threads_above_the_core_count_run_with_a_warning(capsys, tiny_onnx):
    from edgedeploy.cli.params import CORES, MAX_THREADS

    code, _, err = run_cli(capsys, "run", str(tiny_onnx), "--shape", "1x3x8x8", "--runs", "1",
                           "--threads", str(CORES + 1))
    assert code == 0 and f"--threads {CORES + 1} is above the {CORES} cores" in err
    code, _, err = run_cli(capsys, "run", str(tiny_onnx), "--threads", str(MAX_THREADS + 1))
    assert code == 2 and f"less than or equal to {MAX_THREADS}" in one_line_error(err)


def test_help_shows_the_choices(capsys):
    code, out, _ = run_cli(capsys, "run", "--help")
    assert code == 0 and "onnxruntime|openvino|paddle" in out.replace(" ", "").replace("\n", "").replace("│", "")
