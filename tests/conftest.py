"""Tiny models built in code (fast unit tests) and the real zoo models (integration tests)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgedeploy import engines

ALL_ENGINES = list(engines.ENGINES)


def installed(name: str):
    """Parametrize helper: skip (saying why) where an engine's package is missing."""
    return pytest.param(name, marks=pytest.mark.skipif(not engines.available(name),
                                                       reason=f"{name} not installed: {engines.spec(name).install}"))


def build_tiny_onnx(path: Path, *, input_name: str = "input", output_name: str = "output", opset: int = 17) -> Path:
    """Conv(3→8, 3x3) + Relu + GlobalAveragePool + Flatten + Gemm(8→4) + Softmax, NCHW with dynamic N, H, W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "w"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, "b"),
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", [input_name, "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output_name], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


PADDLE_BUILDER = textwrap.dedent('''
    import sys, paddle
    out_dir = sys.argv[1]
    paddle.enable_static()
    with paddle.pir_utils.OldIrGuard():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            paddle.seed(0)
            x = paddle.static.data(name="input", shape=[None, 3, None, None], dtype="float32")
            y = paddle.nn.functional.relu(paddle.nn.Conv2D(3, 8, 3, padding=1)(x))
            y = paddle.nn.Linear(8, 4)(paddle.mean(y, axis=[2, 3]))
            out = paddle.nn.functional.softmax(y)
        main.global_block()._rename_var(out.name, "output")
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        paddle.static.save_inference_model(out_dir + "/model", [x], [main.global_block().var("output")], exe, program=main)
''')


def build_tiny_paddle(directory: Path) -> Path:
    """A tiny Paddle inference model (model.pdmodel + model.pdiparams) with tensors 'input'/'output'.

    Built in a child process: Paddle's static mode is process-global state.
    """
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", PADDLE_BUILDER, str(directory)], check=True, capture_output=True)
    return directory / "model.pdmodel"


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return build_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_paddle(tmp_path_factory) -> Path:
    if not engines.available("paddle"):
        pytest.skip("paddle not installed: pip install 'edgedeploy[paddle]'")
    return build_tiny_paddle(tmp_path_factory.mktemp("tinypd"))


@pytest.fixture
def image_batch() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, 3, 32, 40)).astype(np.float32)


@dataclass
class CliResult:
    """What one `edgedeploy ...` command did: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def edgedeploy_cli(capsys, monkeypatch, tmp_path):
    """Run a command through the real entry point, ``edgedeploy.cli.main`` (never a private app)."""
    from edgedeploy.cli import main

    monkeypatch.setenv("EDGEDEPLOY_LOG_DIR", str(tmp_path / "crash-logs"))

    def invoke(argv) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return invoke


def pytest_collection_modifyitems(session, config, items):
    """The in-process model-server tests run last.

    The server shares one ONNX Runtime thread pool between its models (``shared_threads``), and
    ORT's global pool is process-wide: once it exists, ORT refuses every later session that asks
    for its own pool — as ORT's own quantizer does. In production a server process only serves;
    here the suite is one process, so the tests that create the pool come after all the others.
    """
    serving = Path(__file__).parent / "serving"
    items.sort(key=lambda item: Path(str(item.fspath)).is_relative_to(serving))  # stable: order kept otherwise
