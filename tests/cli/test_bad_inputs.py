"""Every bad input of issue 12 through ``edgedeploy.cli.main``: one line, the contract's exit code, nothing
written; a property-based test drives every command with generated bad arguments and files."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgedeploy
from edgedeploy.cli import main
from tests.cli.bad_inputs import CASES, argv_of, make_files, snapshot

SRC = str(Path(edgedeploy.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_onnx) -> dict[str, str]:
    return make_files(tmp_path_factory.mktemp("bad"), tiny_onnx)


@pytest.fixture(autouse=True)
def _crash_logs_in_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEDEPLOY_LOG_DIR", str(tmp_path / "crash-logs"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_bad_input_is_one_line_with_the_contracts_exit_code(case, files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    before = snapshot(Path(files["tmp"]))
    code = main(argv_of(case, files))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert code == case.exit_code, err
    assert case.says in last, last
    if case.exit_code == 2:  # one line, besides progress lines ("optimize: reading ...") printed off a terminal
        said = [line for line in err.splitlines() if line.strip() and not line.startswith("optimize: ")]
        assert len(said) == 1, err
    assert snapshot(Path(files["tmp"])) == before, "a refused command wrote files"
    assert not (tmp_path / "crash-logs").exists()


def test_random_paddle_bytes_never_reach_paddle_through_the_installed_script(files, tmp_path):
    """A segfault (rc -11) would kill pytest in process; here it would only fail this test."""
    script = Path(sys.executable).with_name("edgedeploy")
    if not script.exists():
        pytest.skip("the edgedeploy console script is not installed")
    env = {**os.environ, "PYTHONPATH": SRC, "EDGEDEPLOY_LOG_DIR": str(tmp_path)}
    for argv in (["run", files["random_pd"], "--shape", "1x3x8x8"], ["eval", files["cut_pd"], "--task", "cls"]):
        r = subprocess.run([str(script), *argv], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2 and "is not a Paddle inference program" in r.stderr, r.stderr


def test_info_does_not_claim_an_engine_runs_an_unknown_operator(files, capsys):
    assert main(["info", files["foo_op"], "--json"]) == 0
    engines_ = json.loads(capsys.readouterr().out)["engines"]
    assert engines_["onnxruntime"].startswith("no: com.example:FooBarOp")
    assert engines_["openvino"] != "yes"


def test_run_json_with_nan_outputs_is_strict_json_with_a_flag(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "nan",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "sqrt.onnx"))
    np.save(tmp_path / "x.npy", np.array([[-1.0, 4.0, -9.0, 16.0]], np.float32))
    assert main(["run", str(tmp_path / "sqrt.onnx"), "--input", str(tmp_path / "x.npy"), "--runs", "1", "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text
    [out] = json.loads(text)["outputs"]
    assert out["non_finite"] == 2 and out["min"] is None and out["mean"] is None


def test_json_stdout_is_one_document_even_when_libraries_print(files, tmp_path):
    """Through the installed script: whatever the engines print, stdout parses as one JSON document."""
    script = Path(sys.executable).with_name("edgedeploy")
    if not script.exists():
        pytest.skip("the edgedeploy console script is not installed")
    env = {**os.environ, "PYTHONPATH": SRC, "EDGEDEPLOY_LOG_DIR": str(tmp_path)}
    for argv in (["run", files["tiny"], "--shape", "1x3x8x8", "--runs", "1", "--json"],
                 ["bench", files["foo_op"], "--engine", "onnxruntime", "--no-anchors", "--runs", "1", "--json"],
                 ["devices", "--latency", "1ms", "--json"], *_optimize_json(tmp_path)):
        r = subprocess.run([str(script), *argv], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
        json.loads(r.stdout)
        assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr


def _optimize_json(tmp_path: Path) -> list[list[str]]:
    """NNCF draws its progress bars on stdout unless told otherwise: the case the issue reproduced."""
    from edgedeploy import engines
    from edgedeploy.optimize import quantize_openvino
    from tests.conftest import build_tiny_onnx

    if not (engines.available("openvino") and quantize_openvino.available()):
        return []
    (tmp_path / "cal").mkdir()
    for i in range(8):
        np.save(tmp_path / "cal" / f"{i}.npy", np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32))
    src = build_tiny_onnx(tmp_path / "t.onnx")
    return [["optimize", str(src), "-o", str(tmp_path / "q.onnx"), "--engine", "openvino", "--calib",
             str(tmp_path / "cal"), "--max-accuracy-drop", "100", "--rounds", "1", "--json"]]


# --- generated bad inputs -------------------------------------------------------------------------------

COMMANDS = [["run"], ["info"], ["bench"], ["eval"], ["deploy"], ["doctor"], ["estimate"], ["pipeline"],
            ["devices", "--recommend"], ["deployment", "verify"], ["deployment", "run"], ["optimize"]]
SUFFIXES = [".onnx", ".pdmodel", ".json", ".yaml", ".npy", ".txt", ""]
BAD_OPTIONS = st.sampled_from([
    ["--threads", "0"], ["--threads", "-3"], ["--threads", "999999"], ["--runs", "0"], ["--runs", "-1"],
    ["--shape", "0x3"], ["--shape", "axb"], ["--shape", "100000x3x224x224"], ["--engine", "tensorrt"],
    ["--precision", "int2"], ["--memory", "1e100GB"], ["--latency", "10 parsecs"], ["--batch", "0"],
    ["--max-frames", "-1"], ["--bogus"], ["--json", "--engine", "x"], [],
])
NAMES = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)


@settings(max_examples=int(os.environ.get("EDGEDEPLOY_FUZZ_EXAMPLES", "50")), deadline=None,
          derandomize=not os.environ.get("EDGEDEPLOY_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS), name=NAMES, suffix=st.sampled_from(SUFFIXES),
       content=st.one_of(st.binary(max_size=256), st.text(max_size=200).map(str.encode)),
       kind=st.sampled_from(["file", "missing", "directory"]), options=BAD_OPTIONS)
def test_generated_bad_inputs_never_crash_and_write_nothing(tmp_path, capsys, monkeypatch, command, name, suffix,
                                                            content, kind, options):
    work = tmp_path / f"case-{os.urandom(4).hex()}"
    work.mkdir()
    monkeypatch.chdir(work)
    target = work / f"{name}{suffix}"
    if kind == "file":
        target.write_bytes(content)
        if suffix == ".pdmodel":
            target.with_suffix(".pdiparams").write_bytes(content[::-1])
    elif kind == "directory":
        target.mkdir()
    argv = [*command, str(target), *options]
    if command == ["optimize"]:
        argv += ["-o", str(work / "out.onnx")]
    before = snapshot(work)
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, argv
    assert code in (1, 2), (argv, code, err)
    assert snapshot(work) == before, f"{argv} wrote files"
    assert not (tmp_path / "crash-logs").exists(), argv


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["auto", "int2", "10 parsecs", "-1ms", "1e100GB", "0x0",
                                                           "local", "jetson-nano", "onnxruntime"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=3), max_leaves=6)
DEPLOY_KEYS = {"deployment": ["hardware", "precision", "batch_size", "memory_optimization", "operator_fusion",
                              "thread_num", "engines", "input_shape"],
               "performance": ["target_latency", "max_memory", "power_consumption"], "monitoring": ["log_level"]}
PIPELINE_KEYS = {"source": ["fps", "realtime", "reconnect", "max_reconnects", "backoff", "open_timeout"],
                 "metrics": ["port", "addr"]}


def _config(sections: dict, required: dict):
    """A config: each section a mapping of its known keys to generated values (or one generated value)."""
    optional = {name: st.dictionaries(st.sampled_from(keys), VALUES, max_size=len(keys)) | VALUES
                for name, keys in sections.items() if name not in required}
    return st.fixed_dictionaries(required, optional={**optional, "stages": VALUES, "sinks": VALUES, "name": VALUES})


@settings(max_examples=int(os.environ.get("EDGEDEPLOY_FUZZ_EXAMPLES", "30")), deadline=None,
          derandomize=not os.environ.get("EDGEDEPLOY_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(["deploy", "doctor", "pipeline"]), data=st.data())
def test_generated_configs_are_refused_in_one_line(tmp_path, capsys, command, data):
    """Deployment and pipeline YAML with generated values in every field; the model / video they name is
    missing, so no generated config can start real work: each is refused (2), never crashes, writes nothing."""
    import yaml

    work = tmp_path / f"case-{os.urandom(4).hex()}"
    work.mkdir()
    if command == "pipeline":
        source = st.dictionaries(st.sampled_from(PIPELINE_KEYS["source"]), VALUES)
        config = data.draw(_config(PIPELINE_KEYS, {"source": source}))
        config["source"]["url"] = str(work / "missing.mp4")
    else:
        config = data.draw(_config(DEPLOY_KEYS, {"model": st.just(str(work / "missing.onnx"))}))
    path = work / "c.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    before = snapshot(work)
    code = main([command, str(path), *(["-o", str(work / "out")] if command == "deploy" else [])])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and code == 2, (config, code, err)
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert snapshot(work) == before
