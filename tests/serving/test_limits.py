"""Bounded resources and strict protocol: oversized bodies refused before decoding, slow clients cut
off, overload answered with 503 + Retry-After, NaN refused in JSON, every error a KServe v2 body."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import psutil

from edgedeploy.serving.protocol import decode_response, encode_request
from edgedeploy.serving.server import ModelServer, ServerSettings
from tests.serving.conftest import MANAGED, feeds, live_server, serve_process


def _static_model(path, op: str = "Relu", shape=(1, 3, 64, 64)):
    """A one-op model with a static input shape (so its largest useful request is known)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "static",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


def _add(repo, name, **kw):
    d = repo / name / "1"
    d.mkdir(parents=True)
    _static_model(d / "model.onnx", **kw)
    (d / "READY").touch()


def test_a_60mb_json_body_is_refused_before_it_is_read(repo):
    import httpx

    _add(repo, "static")
    with serve_process(repo) as (info, proc):
        server = psutil.Process(proc.pid)
        with httpx.Client(base_url=info["url"], timeout=60) as client:
            ok, headers = encode_request({"x": np.ones((1, 3, 64, 64), np.float32)})
            assert client.post("/v2/models/static/infer", content=ok, headers=headers).status_code == 200
            idle = server.memory_info().rss
            body = (b'{"inputs":[{"name":"x","shape":[1,3,64,64],"datatype":"FP32","data":['
                    + b"0.1," * (15 << 20) + b"0]}]}")
            r = client.post("/v2/models/static/infer", content=body)
            assert r.status_code == 413 and "this request can need" in r.json()["error"]

            def stream():  # no Content-Length: refused once the limit is passed, the rest never read
                for i in range(0, len(body), 1 << 20):
                    yield body[i:i + (1 << 20)]
            try:
                assert client.post("/v2/models/static/infer", content=stream()).status_code == 413
            except httpx.HTTPError:
                pass  # or the server closed the connection while the client was still sending
            # decoding 60 MB of JSON would take ~1.5 GB, reading it 60 MB: neither happened
            assert server.memory_info().rss < idle + (20 << 20)
            assert client.get("/v2/health/ready").status_code == 200


def test_nan_is_refused_in_json_and_sent_binary_out(repo):
    _add(repo, "log", op="Log", shape=(1, 4))
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    with live_server(ms) as (client, _):
        r = client.post("/v2/models/log/infer", content=b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32",'
                                                          b'"data":[1,2,NaN,Infinity]}]}')
        assert r.status_code == 400 and "NaN is not a JSON number" in r.json()["error"]
        x = {"x": np.array([[1.0, -1.0, 0.0, 2.0]], np.float32)}  # log(-1) = NaN, log(0) = -inf
        body, headers = encode_request(x)
        r = client.post("/v2/models/log/infer", content=body, headers=headers)
        assert r.status_code == 422 and "binary" in r.json()["error"] and "NaN" not in r.text.replace("NaN or", "")
        body, headers = encode_request(x, binary=True, binary_outputs=True)
        r = client.post("/v2/models/log/infer", content=body, headers=headers)
        y = decode_response(r.content, r.headers)["y"]
        assert r.status_code == 200 and np.isnan(y[0, 1]) and np.isneginf(y[0, 2])


def test_every_error_is_a_kserve_error_body(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    with live_server(ms) as (client, _):
        for method, path, status in (("GET", "/nope", 404), ("GET", "/v2/models/tiny/infer", 405),
                                     ("POST", "/v2/health/live", 405), ("GET", "/v2/models/nope", 404),
                                     ("PUT", "/v2/ab/tiny", 400)):
            r = client.request(method, path)
            assert r.status_code == status and set(r.json()) == {"error"}, (method, path, r.text)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    return s


def _closed_within(sock: socket.socket, seconds: float, drip: bytes) -> tuple[bool, bytes]:
    """Send ``drip`` one byte at a time (a slow-loris client) until the server closes or ``seconds`` pass."""
    got, deadline, i = b"", time.monotonic() + seconds, 0
    sock.setblocking(False)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
            if not chunk:
                return True, got
            got += chunk
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        try:
            sock.send(drip[i % len(drip):i % len(drip) + 1])
            i += 1
        except (BrokenPipeError, ConnectionResetError):
            return True, got
        time.sleep(0.2)
    return False, got


def test_slow_clients_are_cut_off(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0, read_timeout_s=1.0))
    with live_server(ms) as (client, uv):
        port = uv.servers[0].sockets[0].getsockname()[1]
        headers = [_connect(port) for _ in range(4)]  # request headers one byte at a time
        results = []
        threads = [threading.Thread(target=lambda s=s: results.append(
            _closed_within(s, 8, b"POST /v2/models/tiny/infer HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa"))) for s in headers]
        body = _connect(port)  # headers at once, then the body one byte at a time
        body.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        threads.append(threading.Thread(target=lambda: results.append(_closed_within(body, 8, b"0"))))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 5 and all(closed for closed, _ in results)
        assert any(b" 408 " in got for _, got in results)  # the slow body got its answer before the close
        assert client.get("/v2/health/ready").status_code == 200  # and the server still serves others
    for s in headers + [body]:
        s.close()


def test_overload_gets_503_with_retry_after(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0, max_inflight=2))
    with live_server(ms) as (client, _):
        entry = ms.manager.load("tiny", 1)
        for s in entry.pool.sessions:
            run = s._run
            s._run = lambda feeds, run=run: (time.sleep(0.5), run(feeds))[1]
        body, headers = encode_request(feeds())
        statuses, retry = [], []

        def one():
            r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
            statuses.append(r.status_code)
            if r.status_code == 503:
                retry.append(r.headers.get("retry-after"))
                assert json.loads(r.content)["error"]
        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses.count(200) >= 2 and 503 in statuses and set(retry) == {"1"}


def test_json_bodies_are_bounded_for_models_with_dynamic_shapes(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0, max_json_bytes=1 << 20))
    with live_server(ms) as (client, _):
        x = {"input": np.zeros((1, 3, 300, 300), np.float32)}  # 270,000 values: ~1.1 MB as JSON, 1.1 MB binary
        body, headers = encode_request(x)
        r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
        assert r.status_code == 413 and "binary" in r.json()["error"]
        body, headers = encode_request(x, binary=True)
        assert client.post("/v2/models/tiny/infer", content=body, headers=headers).status_code == 200
