"""Hot updates: a new version is loaded, checked and switched to with no failed request; a bad one
never replaces the version serving."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from edgedeploy.serving.protocol import encode_request
from edgedeploy.serving.server import ModelServer, ServerSettings
from tests.serving.conftest import MANAGED, add_version, feeds, live_server, tiny_variant


def _hammer(client, stop: threading.Event, seen: list, failures: list):
    body, headers = encode_request(feeds(), binary=True)
    while not stop.is_set():
        r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
        if r.status_code != 200:
            failures.append((r.status_code, r.text[:200]))
        else:
            seen.append(json.loads(r.content)["model_version"])


def test_hot_swap_under_load_fails_no_request(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0.2))
    stop, seen, failures = threading.Event(), [], []
    with live_server(ms) as (client, _):
        workers = [threading.Thread(target=_hammer, args=(client, stop, seen, failures)) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.4)
        add_version(repo, "tiny", 2, bias=0.5)  # dropped into the repository; the watcher finds it
        deadline = time.monotonic() + 15
        while ms.serving.current("tiny") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.4)
        stop.set()
        for w in workers:
            w.join()
    assert failures == []
    assert ms.serving.history[-1].ok, ms.serving.history[-1]
    assert "1" in seen and "2" in seen and seen[-1] == "2"
    assert seen.index("2") > 0 and "1" not in seen[seen.index("2") + 50:]  # switched once, not back and forth


@pytest.mark.parametrize("make_bad, reason", [
    (lambda d: (d / "model.onnx").write_bytes(b"\x08\x07garbage, not a model"), "not a valid ONNX model"),
    (lambda d: tiny_variant(d / "model.onnx", output_name="probs"), "outputs differ"),
    (lambda d: (d / "config.yaml").write_text("warmup: {input: 1x3x8x8}\nmax_output_diff: 0.001\n"),
     "outputs differ from v1 by up to"),
    (lambda d: (d / "SHA256SUMS").write_text("0" * 64 + "  model.onnx\n"), "does not match SHA256SUMS"),
])
def test_a_bad_new_version_never_replaces_the_serving_one(repo, make_bad, reason):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    with live_server(ms) as (client, _):
        body, headers = encode_request(feeds())
        assert client.post("/v2/models/tiny/infer", content=body, headers=headers).status_code == 200
        make_bad(add_version(repo, "tiny", 2, bias=3.0))
        [result] = ms.serving.refresh()
        assert not result.ok and reason in result.reason
        assert ms.serving.current("tiny") == 1 and ms.manager.get("tiny", 2) is None
        r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
        assert r.status_code == 200 and json.loads(r.content)["model_version"] == "1"
        assert ms.serving.refresh() == []  # a failed version is not retried at every scan
        row = [x for x in client.post("/v2/repository/index").json() if x["name"] == "tiny" and x["version"] == "2"][0]
        assert row["state"] == "UNAVAILABLE" and reason in row["reason"]
        assert 'edgedeploy_swaps_total{model="tiny",result="failed"} 1.0' in client.get("/metrics").text


def test_custom_check_can_refuse_a_version(repo):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0), check=lambda name, v, s: "accuracy 0.41 < 0.90" if v == 2 else None)
    add_version(repo, "tiny", 2)
    [result] = ms.serving.refresh()
    assert not result.ok and "accuracy 0.41 < 0.90" in result.reason and ms.serving.current("tiny") == 1
    ms.stop()


def test_upload_checks_its_sha256_and_swaps_in(repo, tmp_path):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    data = tiny_variant(tmp_path / "m.onnx", bias=0.2).read_bytes()
    with live_server(ms) as (client, _):
        r = client.post("/v2/repository/models/tiny/versions", content=data, headers={"x-content-sha256": "ab" * 32})
        assert r.status_code == 400 and "does not match the sha256" in r.json()["error"]
        assert ms.repo.versions("tiny") == [1]
        r = client.post("/v2/repository/models/tiny/versions", content=data,
                        headers={"x-content-sha256": hashlib.sha256(data).hexdigest()})
        assert r.status_code == 200 and r.json()["ok"] and r.json()["new"] == 2
        assert ms.serving.current("tiny") == 2 and ms.manager.get("tiny", 1) is None
        r = client.post("/v2/repository/models/tiny/versions", content=b"junk")
        assert r.status_code == 422 and not r.json()["ok"] and ms.serving.current("tiny") == 2
