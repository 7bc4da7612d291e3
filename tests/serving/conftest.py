"""A model repository of tiny models built in code, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import build_tiny_onnx

TINY_CONFIG = "warmup: {input: 1x3x8x8}\n"
MANAGEMENT_TOKEN = "test-management-token-0123456789"
INFERENCE_TOKEN = "test-inference-token-0123456789"
MANAGED = {"management": True, "management_token": MANAGEMENT_TOKEN}  # the management API on, with its token


def tiny_variant(path: Path, *, bias: float = 0.0, output_name: str = "output") -> Path:
    """The tiny model with class k's bias shifted by k·``bias`` (a different but compatible version)."""
    import onnx
    from onnx import numpy_helper

    build_tiny_onnx(path, output_name=output_name)
    if bias:
        m = onnx.load(str(path))
        for init in m.graph.initializer:
            if init.name == "fc_b":
                shifted = numpy_helper.to_array(init) + np.float32(bias) * np.arange(4, dtype=np.float32)
                init.CopyFrom(numpy_helper.from_array(shifted, "fc_b"))
        onnx.save(m, str(path))
    return path


def add_version(repo: Path, name: str, version: int, *, config: str = TINY_CONFIG, ready: bool = True,
                **variant) -> Path:
    """A tiny model version; ``ready`` writes the READY marker (complete: no settle time needed)."""
    d = repo / name / str(version)
    d.mkdir(parents=True)
    tiny_variant(d / "model.onnx", **variant)
    if config:
        (d / "config.yaml").write_text(config)
    if ready:
        (d / "READY").touch()
    return d


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    add_version(root, "tiny", 1)
    add_version(root, "other", 1)
    return root


def feeds(seed: int = 0, n: int = 1) -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)}


@contextmanager
def live_server(model_server, *, graceful_s: int = 10, token: str | None = "auto", tls=None, grpc: bool = False):
    """Run the app with uvicorn (configured as ``serve`` runs it) on 127.0.0.1 and an ephemeral port in a
    background thread. The client sends ``token`` (default: the management token, if the server has one).
    Yields (client, uvicorn server); the gRPC port, when ``grpc``, is ``server.config.app.state.grpc_port``."""
    import dataclasses

    import uvicorn

    from edgedeploy.serving.server import create_app, uvicorn_config

    settings = dataclasses.replace(model_server.settings, shutdown_timeout_s=graceful_s)
    model_server.settings = settings
    app = create_app(model_server, grpc_port=0 if grpc else None)
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=0, settings=settings, tls=tls))
    if token == "auto":
        token = settings.management_token
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=f"http{'s' if tls else ''}://127.0.0.1:{port}", timeout=30, headers=headers,
                          verify=False) as client:
            yield client, server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def build_big_onnx(path: Path, *, mb: int = 8, seed: int = 0) -> Path:
    """A model whose weights really take ``mb`` MB of memory: output = Gather(table, indices).
    The table cannot be folded away (the indices are the input), so loading it costs its size."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(seed).standard_normal(mb * (1 << 18)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "indices"], ["values"])], "big",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def add_big(repo: Path, name: str, version: int = 1, *, mb: int = 8, config: str = "warmup: {indices: '4'}\n") -> Path:
    d = repo / name / str(version)
    d.mkdir(parents=True)
    build_big_onnx(d / "model.onnx", mb=mb, seed=version)
    (d / "config.yaml").write_text(config)
    return d


@contextmanager
def serve_process(repo: Path, *args: str, env: dict | None = None):
    """``edgedeploy serve REPO --port 0 --grpc-port 0 --json ...`` as its own process (as users run it).
    Yields (the start-up summary with the bound ports, the process)."""
    from edgedeploy.serving.process import start_serve, stop_serve

    proc, info = start_serve(repo, *args, env=env, timeout_s=60)
    try:
        yield info, proc
    finally:
        stop_serve(proc)
