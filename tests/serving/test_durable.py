"""Durable version state: rejections, A/B decisions and the serving version survive a restart;
copies in progress are waited for; one bad entry does not stop the rest; signed repositories."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

from edgedeploy.security import keys, signing
from edgedeploy.serving.repository import Repository
from edgedeploy.serving.server import ModelServer, ServerSettings
from edgedeploy.serving.state import STATE_FILE
from tests.serving.conftest import MANAGED, add_version, feeds, live_server, tiny_variant
from edgedeploy.serving.protocol import encode_request


def _served_version(client) -> str:
    body, headers = encode_request(feeds())
    r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    return json.loads(r.content)["model_version"]


def test_restart_after_a_rejected_upload_serves_the_previous_version(repo, tmp_path):
    good = tiny_variant(tmp_path / "m.onnx").read_bytes()
    with live_server(ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))) as (client, _):
        r = client.post("/v2/repository/models/tiny/versions", content=good[: len(good) // 2])  # truncated
        assert r.status_code == 422
        assert _served_version(client) == "1"
    assert json.loads((repo / STATE_FILE).read_text())["models"]["tiny"]["versions"]["2"]["status"] == "rejected"
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0.2))  # the restart
    with live_server(ms) as (client, _):
        assert _served_version(client) == "1"
        time.sleep(0.6)  # the watcher scans, and leaves the rejected version alone
        assert _served_version(client) == "1"
        r = client.post("/v2/models/tiny/versions/2/infer", content=encode_request(feeds())[0])
        assert r.status_code == 403 and "re-admit" in r.json()["error"]
        row = [x for x in client.post("/v2/repository/index").json() if x["version"] == "2"][0]
        assert row["status"] == "rejected" and row["state"] == "UNAVAILABLE"
        # the operator replaces the files and re-admits the version: it is checked again and serves
        (repo / "tiny" / "2" / "model.onnx").write_bytes(good)
        assert client.post("/v2/repository/models/tiny/versions/2/admit").status_code == 200
        deadline = time.monotonic() + 15
        while ms.serving.current("tiny") != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _served_version(client) == "2"


def test_an_ab_rollback_sticks_across_the_watcher_and_a_restart(repo):
    add_version(repo, "tiny", 2, bias=0.5)
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0.2))
    with live_server(ms) as (client, _):
        assert _served_version(client) == "2"
        assert client.put("/v2/ab/tiny", json={"baseline": 2, "candidate": 1, "weight": 0.5}).status_code == 200
        assert client.delete("/v2/ab/tiny", params={"winner": "candidate"}).status_code == 200  # roll back to v1
        time.sleep(1.0)  # several watcher scans
        assert ms.serving.current("tiny") == 1 and _served_version(client) == "1"
    with live_server(ModelServer(repo, ServerSettings(**MANAGED, poll_s=0.2))) as (client, _):
        time.sleep(0.6)
        assert _served_version(client) == "1"


def test_a_running_ab_test_survives_a_restart(repo):
    add_version(repo, "tiny", 2, bias=0.5)
    with live_server(ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))) as (client, _):
        assert client.put("/v2/ab/tiny", json={"baseline": 1, "candidate": 2, "weight": 1.0}).status_code == 200
    with live_server(ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))) as (client, _):
        assert client.get("/v2/ab/tiny").json()["variants"]["candidate"]["version"] == 2
        assert _served_version(client) == "2"  # weight 1.0: all traffic to the candidate


def test_a_slow_copy_is_served_once_complete(repo, tmp_path):
    src = tiny_variant(tmp_path / "m.onnx", bias=0.3).read_bytes()
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0.1, settle_s=0.6))
    with live_server(ms) as (client, _):
        d = repo / "tiny" / "2"

        def slow_cp():  # like `cp -r` of a large model over a slow disk: the file grows for a while
            d.mkdir()
            shutil.copy(repo / "tiny" / "1" / "config.yaml", d / "config.yaml")
            with open(d / "model.onnx", "wb") as f:
                for i in range(0, len(src), len(src) // 8 + 1):
                    f.write(src[i:i + len(src) // 8 + 1])
                    f.flush()
                    time.sleep(0.15)
        t = threading.Thread(target=slow_cp)
        t.start()
        t.join()
        deadline = time.monotonic() + 15
        while ms.serving.current("tiny") != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _served_version(client) == "2"
        assert not any(not r.ok for r in ms.serving.history)  # never tried while half-written


def test_a_version_refused_while_half_written_is_retried_when_it_changes(repo, tmp_path):
    src = tiny_variant(tmp_path / "m.onnx", bias=0.3).read_bytes()
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0, settle_s=0))  # no settle time: caught half-way
    d = repo / "tiny" / "2"
    d.mkdir()
    (d / "model.onnx").write_bytes(src[:100])
    [r] = ms.serving.refresh()
    assert not r.ok and ms.serving.refresh() == []  # refused, and not retried while unchanged
    time.sleep(0.01)
    (d / "model.onnx").write_bytes(src)  # the copy finishes
    [r] = ms.serving.refresh()
    assert r.ok and ms.serving.current("tiny") == 2
    ms.stop()


def test_one_bad_entry_is_skipped_and_the_rest_keeps_updating(repo, tmp_path):
    outside = tmp_path / "outside"
    add_version(outside, "elsewhere", 1)
    os.symlink(outside / "elsewhere", repo / "linked")  # a symlinked model directory
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    with live_server(ms) as (client, _):
        add_version(repo, "tiny", 2, bias=0.5)
        results = ms.serving.refresh()
        assert [r.ok for r in results] == [True] and ms.serving.current("tiny") == 2
        skipped = [x for x in client.post("/v2/repository/index").json() if x["status"] == "skipped"]
        assert skipped[0]["name"] == "linked" and "symlink" in skipped[0]["reason"]
        assert client.post("/v2/models/linked/infer", json={"inputs": []}).status_code in (400, 404)


def test_a_model_file_symlinked_out_of_the_repository_is_refused(repo, tmp_path):
    outside = tiny_variant(tmp_path / "secret.onnx", bias=0.5)
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    for v in (2, 3):  # v2 found by the watcher, v3 present at the restart
        d = repo / "tiny" / str(v)
        d.mkdir()
        os.symlink(outside, d / "model.onnx")
        (d / "READY").touch()
        if v == 2:
            [r] = ms.serving.refresh()
            assert not r.ok and "outside the version directory" in r.reason and ms.serving.current("tiny") == 1
            ms.stop()
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    assert ms.serving.current("tiny") == 1 and ms.serving.refresh() == []
    assert ms.state.verdict("tiny", 3)["status"] == "quarantined"
    ms.stop()


def test_a_signed_repository_serves_signed_versions_only(repo, tmp_path):
    priv, pub = keys.generate_keypair(tmp_path / "keys")
    key = keys.load_private_key(priv)
    signing.sign_directory(repo / "tiny" / "1", key)
    trusted = keys.load_public_keys(pub)
    r = Repository(repo, trusted_keys=trusted, signing_key=key)
    assert r.version("tiny", 1).model_file.name == "model.onnx"
    with pytest.raises(signing.VerificationError, match="not signed"):
        r.version("other", 1)  # unsigned
    ms = ModelServer(r, ServerSettings(**MANAGED, poll_s=0))
    with live_server(ms) as (client, _):
        assert ms.state.verdict("other", 1)["status"] == "quarantined"  # unsigned: never served
        r_other = client.post("/v2/models/other/infer", content=encode_request(feeds())[0])
        assert r_other.status_code == 403 and "not signed" in r_other.json()["error"]
        data = tiny_variant(tmp_path / "m.onnx", bias=0.2).read_bytes()
        res = client.post("/v2/repository/models/tiny/versions", content=data)
        assert res.status_code == 200, res.text  # the server signed what it accepted
        signing.verify_directory(repo / "tiny" / "2", trusted)
        (repo / "tiny" / "2" / "extra.txt").write_text("dropped in later")
        r.forget("tiny", 2)
        with pytest.raises(signing.VerificationError, match="unlisted file 'extra.txt'"):
            r.version("tiny", 2)
