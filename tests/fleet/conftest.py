"""A private mosquitto on loopback (persistence and credentials as asked), a controller in this
process, and agents as real `edgedeploy agent` processes; tiny models built in code."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import build_tiny_onnx

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY_CONFIG = {"warmup": {"input": "1x3x8x8"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Broker:
    """mosquitto on 127.0.0.1:<port>; ``users`` turns anonymous access off (a password file)."""

    def __init__(self, directory: Path, *, users: dict[str, str] | None = None):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary, self.port, self.dir = binary, free_port(), directory
        directory.mkdir(parents=True, exist_ok=True)
        conf = [f"listener {self.port} 127.0.0.1", "persistence false", f"log_dest file {directory / 'mosquitto.log'}"]
        if os.geteuid() == 0:  # as root mosquitto drops to user 'mosquitto', who cannot read pytest's private tmp dirs
            conf.append("user root")
        if users:
            pw = directory / "passwd"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True)
            conf += ["allow_anonymous false", f"password_file {pw}"]
        else:
            conf.append("allow_anonymous true")
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _port_open(self.port), 5, "the broker to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # as a crash: no clean goodbye to the clients
            self.proc.wait(5)
            self.proc = None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


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
