"""The real pair of seed 2 (PicoDet layout + PP-LCNet orientation) served together over HTTP."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgedeploy import engines, zoo
from edgedeploy.serving.protocol import decode_response, encode_request
from edgedeploy.serving.server import ModelServer, ServerSettings
from tests.serving.conftest import MANAGED, live_server

pytestmark = pytest.mark.integration


def test_picodet_and_pplcnet_served_together(tmp_path):
    repo = tmp_path / "repo"
    shapes = {"picodet-layout": (1, 3, 800, 608), "pplcnet-orientation": (1, 3, 224, 224)}
    for name in shapes:
        d = repo / name / "1"
        d.mkdir(parents=True)
        shutil.copy(zoo.fetch(name).path, d / "model.onnx")
    ms = ModelServer(repo, ServerSettings(**MANAGED, memory_budget=400 << 20, poll_s=0))
    with live_server(ms) as (client, _):
        for name, shape in shapes.items():
            meta = client.get(f"/v2/models/{name}").json()
            x = {meta["inputs"][0]["name"]: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
            body, headers = encode_request(x, binary=True, binary_outputs=True)
            r = client.post(f"/v2/models/{name}/infer", content=body, headers=headers)
            assert r.status_code == 200, r.text
            got = decode_response(r.content, r.headers)
            with engines.load(name) as s:
                want = s.run(x)
            for k, v in want.items():
                np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-4 * float(np.abs(v).max()))
        memory = client.get("/v2/repository/memory").json()
        assert {m["name"] for m in memory["models"]} == set(shapes)
        freed = client.post("/v2/repository/models/picodet-layout/unload").json()["freed_bytes"]
        assert freed > 0
