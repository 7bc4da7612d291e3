"""The HTTP server, for real: uvicorn on 127.0.0.1, requests with httpx, KServe v2 answers."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.serving.protocol import decode_response, encode_request
from edgedeploy.serving.server import ModelServer, ServerSettings
from tests.serving.conftest import MANAGED, feeds, live_server


def _infer(client, path, arrays, **kw):
    body, headers = encode_request(arrays, **kw)
    return client.post(path, content=body, headers=headers)


@pytest.fixture
def served(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, max_body_bytes=64 << 10, timeout_s=5, poll_s=0))
    with live_server(ms) as (client, uv):
        yield client, ms, uv


def test_health_and_metadata(served):
    client, _, _ = served
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]
    meta = client.get("/v2/models/tiny").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    assert meta["outputs"][0]["name"] == "output" and meta["versions"] == ["1"]
    assert client.get("/v2/models/tiny/versions/1/ready").json()["ready"] is True


@pytest.mark.parametrize("binary", [False, True])
def test_infer_gives_what_the_engine_gives(served, repo, binary):
    client, _, _ = served
    x = feeds(seed=3, n=2)
    r = _infer(client, "/v2/models/tiny/infer", x, binary=binary, binary_outputs=binary, id="req-7")
    assert r.status_code == 200, r.text
    out = decode_response(r.content, r.headers)
    with engines.load(str(repo / "tiny" / "1" / "model.onnx")) as s:
        want = s.run(x)["output"]
    np.testing.assert_allclose(out["output"], want, rtol=1e-5, atol=1e-6)
    r2 = _infer(client, "/v2/models/tiny/versions/1/infer", x)
    assert json.loads(r2.content)["model_version"] == "1"


@pytest.mark.parametrize("path, body, status, message", [
    ("/v2/models/nope/infer", None, 404, "unknown model 'nope'"),
    ("/v2/models/tiny/versions/9/infer", None, 404, "has no version 9"),
    ("/v2/models/tiny/versions/x/infer", None, 404, "is not a version"),
    ("/v2/models/%2E%2E/infer", None, 400, "is not allowed"),
    ("/v2/models/tiny/infer", b"{oops", 400, "not valid JSON"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "image", "shape": [1, 3, 8, 8], "datatype": "FP32",
                                           "data": [0.0] * 192}]}, 400, "'image' is not an input of this model"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4, 8, 8], "datatype": "FP32",
                                           "data": [0.0] * 256}]}, 400, "input 'input' has shape 1x4x8x8"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP64",
                                           "data": [0.0] * 192}]}, 400, "has dtype float64; the model expects float32"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32",
                                           "data": [0.0] * 191}]}, 400, "data has 191 values"),
])
def test_bad_requests_get_one_line_errors(served, path, body, status, message):
    client, _, _ = served
    if body is None:
        r = _infer(client, path, feeds())
    else:
        r = client.post(path, content=body if isinstance(body, bytes) else json.dumps(body))
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "\n" not in r.json()["error"]


def test_oversized_bodies_are_refused(served):
    client, _, _ = served
    r = _infer(client, "/v2/models/tiny/infer", {"input": np.zeros((1, 3, 128, 128), np.float32)}, binary=True)
    assert r.status_code == 413 and "over the 64.0 KiB this request can need" in r.json()["error"]

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(100):
            yield b" " * 1024
    r = client.post("/v2/models/tiny/infer", content=chunks())
    assert r.status_code == 413


def test_repository_load_unload_and_metrics(served):
    client, ms, _ = served
    assert {(r["name"], r["state"]) for r in client.post("/v2/repository/index").json()} == \
        {("tiny", "AVAILABLE"), ("other", "AVAILABLE")}
    r = client.post("/v2/repository/models/other/load")
    assert r.status_code == 200 and r.json()["version"] == "1"
    assert ("other", "READY") in {(r["name"], r["state"]) for r in client.post("/v2/repository/index").json()}
    assert _infer(client, "/v2/models/tiny/infer", feeds()).status_code == 200
    _infer(client, "/v2/models/tiny/infer", {"input": np.zeros((1, 2, 8, 8), np.float32)})
    text = client.get("/metrics").text
    assert 'edgedeploy_requests_total{model="tiny",outcome="ok",version="1"} 1.0' in text
    assert 'edgedeploy_requests_total{model="tiny",outcome="client_error",version="default"} 1.0' in text
    assert 'edgedeploy_request_latency_seconds_bucket{le="0.001",model="tiny",version="1"}' in text
    assert 'edgedeploy_queue_seconds_count{model="tiny",version="1"} 2.0' in text
    assert 'edgedeploy_model_memory_bytes{model="other",version="1"}' in text
    assert 'edgedeploy_model_loads_total{model="other",version="1"} 1.0' in text
    r = client.post("/v2/repository/models/other/unload")
    assert r.json()["unloaded"] == ["1"]
    assert 'edgedeploy_model_unloads_total{model="other",version="1"} 1.0' in client.get("/metrics").text
    assert [m["name"] for m in client.get("/v2/repository/memory").json()["models"]] == ["tiny"]


def _slow(ms, name, seconds):
    """Make the loaded model take ``seconds`` a run (a stand-in for a big model)."""
    entry = ms.manager.load(name, ms.serving.current(name))
    for s in entry.pool.sessions:
        run = s._run
        s._run = lambda feeds, run=run: (time.sleep(seconds), run(feeds))[1]


def test_slow_requests_time_out(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, timeout_s=0.3, poll_s=0))
    with live_server(ms) as (client, _):
        _slow(ms, "tiny", 1.0)
        r = _infer(client, "/v2/models/tiny/infer", feeds())
        assert r.status_code == 504 and "0.3 s timeout" in r.json()["error"]


def test_shutdown_finishes_requests_in_flight(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    results = []
    with live_server(ms) as (client, uv):
        _slow(ms, "tiny", 0.8)
        t = threading.Thread(target=lambda: results.append(_infer(client, "/v2/models/tiny/infer", feeds())))
        t.start()
        time.sleep(0.3)
        uv.should_exit = True  # what SIGTERM / Ctrl-C do
        t.join(timeout=10)
    assert results and results[0].status_code == 200
    assert ms.manager.status() == []  # the app's shutdown unloaded every model


def test_budget_smaller_than_the_smallest_model_is_refused_at_start(repo):
    with pytest.raises(UserError, match=r"--memory-budget 100 B is smaller than the smallest model \(.*raise the budget"):
        ModelServer(repo, ServerSettings(**MANAGED, memory_budget=100))
