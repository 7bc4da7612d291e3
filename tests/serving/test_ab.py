"""A/B tests: routing by weight and key, per-variant statistics, the statistical report, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.serving import ab
from edgedeploy.serving.protocol import encode_request
from edgedeploy.serving.server import ModelServer, ServerSettings
from tests.serving.conftest import MANAGED, add_version, feeds, live_server


def test_routing_follows_the_weight_and_sticks_to_a_key():
    t = ab.ABTest("m", 1, 2, weight=0.3, seed=0)
    share = sum(t.route() == "candidate" for _ in range(4000)) / 4000
    assert 0.27 < share < 0.33
    keyed = [t.route(f"user-{i}") for i in range(2000)]
    assert 0.26 < keyed.count("candidate") / 2000 < 0.34
    assert all(t.route(f"user-{i}") == keyed[i] for i in range(0, 2000, 7))
    assert ab.ABTest("m", 1, 2, weight=0.0).route("k") == "baseline"
    with pytest.raises(UserError, match="is not a share"):
        ab.ABTest("m", 1, 2, weight=1.5)


def test_statistics_tell_different_from_same():
    rng = np.random.default_rng(0)
    x, y = rng.gamma(2, 5, 300).round(1), rng.gamma(2, 7, 250).round(1)  # rounded: ties
    assert ab.mann_whitney(x, y)[1] < 0.01 and ab.mann_whitney(x, x)[1] > 0.9
    assert ab.mann_whitney([3.0] * 5, [3.0] * 5)[1] == 1.0  # all equal: no evidence, no crash
    assert ab.two_proportions(30, 500, 12, 480) < 0.01 and ab.two_proportions(10, 500, 10, 500) == pytest.approx(1.0)
    low, high = ab.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # the textbook Wilson bound for 0/10


def _data(lat_b, lat_c, err_b=0, err_c=0, agreed=None, compared=0):
    def v(version, lat, err, agreed_, compared_):
        return {"version": version, "requests": len(lat) + err, "errors": err, "compared": compared_,
                "agreed": agreed_ or 0, "max_diff": 0.0, "latencies_ms": list(lat)}
    return {"model": "m", "weight": 0.5, "variants": {"baseline": v(1, lat_b, err_b, 0, 0),
                                                      "candidate": v(2, lat_c, err_c, agreed, compared)}}


def test_report_recommends_promote_keep_or_rollback():
    rng = np.random.default_rng(1)
    same = lambda n: rng.normal(10, 1, n)  # noqa: E731
    assert ab.report(_data(same(300), same(300), agreed=290, compared=300))["recommendation"] == "promote"
    assert ab.report(_data(same(30), same(30)))["recommendation"] == "keep"
    r = ab.report(_data(same(300), same(300), err_c=40))
    assert r["recommendation"] == "rollback" and "error rate" in r["reasons"][0]
    r = ab.report(_data(same(300), rng.normal(13, 1, 300)))
    assert r["recommendation"] == "rollback" and "candidate median latency +" in r["reasons"][0]
    r = ab.report(_data(same(300), same(300), agreed=200, compared=300))
    assert r["recommendation"] == "rollback" and "agrees with the baseline on 66.7%" in r["reasons"][0]


def test_compare_outputs():
    a = {"p": np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)}
    assert ab.compare_outputs(a, {"p": a["p"] + 1e-5})[0]
    assert ab.compare_outputs(a, {"p": np.array([[0.3, 0.7], [0.6, 0.4]], np.float32)})[0]  # same classes
    assert not ab.compare_outputs(a, {"p": np.array([[0.6, 0.4], [0.6, 0.4]], np.float32)})[0]
    assert not ab.compare_outputs(a, {"p": a["p"][:1]})[0]


def test_ab_test_over_http_and_the_report_command(repo, edgedeploy_cli):
    ms = ModelServer(repo, ServerSettings(**MANAGED, poll_s=0))
    with live_server(ms) as (client, _):
        add_version(repo, "tiny", 2, bias=4.0)  # disagrees with v1 on some inputs
        assert client.put("/v2/ab/tiny", json={"candidate": 2, "weight": 0.5, "seed": 0}).status_code == 200
        assert ms.serving.refresh() == [] and ms.serving.current("tiny") == 1  # held by the test: no auto-swap
        variants = {}
        for i in range(40):
            body, headers = encode_request(feeds(seed=i), parameters={"ab_key": f"user-{i % 10}"})
            r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
            assert r.status_code == 200
            variants.setdefault(f"user-{i % 10}", set()).add(json.loads(r.content)["parameters"]["ab_variant"])
        assert all(len(v) == 1 for v in variants.values())  # sticky
        ms._shadow.submit(lambda: None).result(timeout=10)  # wait for queued shadow runs
        stats = client.get("/v2/ab/tiny").json()["variants"]
        assert stats["baseline"]["requests"] + stats["candidate"]["requests"] == 40
        assert stats["candidate"]["compared"] == stats["candidate"]["requests"] > 0
        assert 'edgedeploy_ab_requests_total{model="tiny",outcome="ok",variant="candidate",version="2"}' in \
            client.get("/metrics").text
        assert client.delete("/v2/ab/tiny", params={"winner": "candidate"}).status_code == 200
        assert ms.serving.current("tiny") == 2
    result = edgedeploy_cli(["ab", "report", "tiny", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["recommendation"] == "keep" and r["baseline"]["version"] == 1 and r["candidate"]["version"] == 2
    assert "Mann-Whitney" in r["method"]
