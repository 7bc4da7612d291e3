"""A private mosquitto on loopback (persistence and credentials as asked), a controller in this
process, and agents as real `edgedeploy agent` processes; tiny models built in code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.fleet.broker import LocalBroker, mosquitto_binary, wait_for  # noqa: F401  (the tests' poller)
from tests.conftest import build_tiny_onnx

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY_CONFIG = {"warmup": {"input": "1x3x8x8"}}


def Broker(directory: Path, **kw) -> LocalBroker:  # noqa: N802  (reads as the class it returns)
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    return LocalBroker(directory, **kw)


def tiny_model(path: Path, *, bias: float = 0.0) -> Path:
    """The tiny classifier; ``bias`` shifts class k's logit by k·bias (a different model, same interface)."""
    import onnx
    from onnx import numpy_helper

    build_tiny_onnx(path)
    if bias:
        m = onnx.load(str(path))
        for init in m.graph.initializer:
            if init.name == "fc_b":
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(bias) * np.arange(4, dtype=np.float32), "fc_b"))
        onnx.save(m, str(path))
    return path


def golden_for(model: Path, out: Path) -> Path:
    """Reference outputs of ``model`` on a fixed input, as the plan's golden.npz."""
    import onnxruntime as ort

    from edgedeploy.fleet.artifacts import write_golden

    x = {"input": np.random.default_rng(7).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return write_golden(out, x, dict(zip([o.name for o in s.get_outputs()], s.run(None, x))))


def write_plan(path: Path, **plan) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(plan))
    return path


class AgentProc:
    """One `edgedeploy agent` process."""

    def __init__(self, device: str, state: Path, broker_port: int, trust: Path, *, extra: tuple[str, ...] = ()):
        self.device, self.state = device, state
        self.args = [sys.executable, "-c", "import sys; from edgedeploy.cli import main; sys.exit(main(sys.argv[1:]))", "--log-level", "info", "agent", "--id", device,
                     "--dir", str(state), "--trust", str(trust), "--broker", f"127.0.0.1:{broker_port}",
                     "--heartbeat", "0.5", "--load-hz", "20", *extra]
        self.proc: subprocess.Popen | None = None

    def start(self) -> AgentProc:
        env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log = open(self.state.parent / f"{self.device}.log", "ab")
        self.proc = subprocess.Popen(self.args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def saved(self) -> dict:
        f = self.state / "agent.json"
        return json.loads(f.read_text()) if f.is_file() else {}
