"""Tokens and roles: every route is guarded (found by walking the route table), the upload attack
fails, tokens never reach the log; TLS and mutual TLS with the official Triton clients."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from fastapi.routing import APIRoute

from edgedeploy.cli import main
from edgedeploy.errors import UserError
from edgedeploy.serving.auth import PUBLIC_PATHS, load_token
from edgedeploy.serving.server import TLS, ModelServer, ServerSettings
from tests.serving.conftest import INFERENCE_TOKEN, MANAGEMENT_TOKEN, feeds, live_server

GUARDED = dict(management=True, management_token=MANAGEMENT_TOKEN, inference_token=INFERENCE_TOKEN, poll_s=0)


def _routes(app):
    for r in app.routes:
        if isinstance(r, APIRoute):
            path = re.sub(r"\{name\}", "tiny", r.path)
            path = re.sub(r"\{version\}", "1", path)
            for method in sorted(r.methods):
                yield method, r.path, path


def test_every_route_needs_its_token(repo):
    ms = ModelServer(repo, ServerSettings(**GUARDED))
    with live_server(ms, token=None) as (client, uv):
        app = uv.config.app
        routes = list(_routes(app))
        assert len(routes) >= 20  # the table is really walked
        public = set()
        for method, template, path in routes:
            r = client.request(method, path)
            if r.status_code not in (401, 403):
                public.add(template)
                continue
            assert "error" in r.json() and MANAGEMENT_TOKEN not in r.text
            wrong = client.request(method, path, headers={"authorization": "Bearer not-the-token-0123456789"})
            assert wrong.status_code in (401, 403), (method, path)
            if template.startswith(("/v2/repository", "/v2/ab")):  # management: the inference token is not enough
                r = client.request(method, path, headers={"authorization": f"Bearer {INFERENCE_TOKEN}"})
                assert r.status_code == 403, (method, path, r.text)
        assert public == PUBLIC_PATHS  # only the health probes answer without a token
        ok = client.get("/v2/models/tiny", headers={"authorization": f"Bearer {INFERENCE_TOKEN}"})
        assert ok.status_code == 200


def test_replacing_a_model_with_curl_fails(repo, tmp_path):
    evil = b"\x08\x07" + b"evil model" * 100
    for settings, token, status in ((ServerSettings(poll_s=0), None, 403),  # management off: the default
                                    (ServerSettings(**GUARDED), None, 401),
                                    (ServerSettings(**GUARDED), INFERENCE_TOKEN, 403)):
        ms = ModelServer(repo, settings)
        with live_server(ms, token=token) as (client, _):
            r = client.post("/v2/repository/models/tiny/versions", content=evil)
            assert r.status_code == status and "error" in r.json()
            r = client.post("/v2/repository/models/newmodel/versions", content=evil)
            assert r.status_code == status
            assert client.delete("/v2/ab/tiny").status_code == status
            assert client.post("/v2/repository/models/tiny/unload").status_code == status
        assert ms.repo.versions("tiny") == [1] and not (repo / "newmodel").exists()


def test_a_first_upload_is_validated(repo):
    ms = ModelServer(repo, ServerSettings(**GUARDED))
    with live_server(ms) as (client, _):
        r = client.post("/v2/repository/models/fresh/versions", content=b"\x08\x07 not a model")
        assert r.status_code == 422 and not r.json()["ok"]
        r = client.post("/v2/models/fresh/infer", json={"inputs": []})
        assert r.status_code in (400, 403)


def test_tokens_from_file_or_env_and_never_logged(tmp_path, monkeypatch, repo, caplog):
    f = tmp_path / "token"
    f.write_text(MANAGEMENT_TOKEN + "\n")
    assert load_token(file=f) == MANAGEMENT_TOKEN
    monkeypatch.setenv("EDGEDEPLOY_TOKEN", INFERENCE_TOKEN)
    assert load_token(env="EDGEDEPLOY_TOKEN") == INFERENCE_TOKEN
    f.write_text("short")
    with pytest.raises(UserError, match="at least 16"):
        load_token(file=f)
    assert INFERENCE_TOKEN not in repr(ServerSettings(inference_token=INFERENCE_TOKEN))
    caplog.set_level(logging.DEBUG)
    ms = ModelServer(repo, ServerSettings(**GUARDED))
    with live_server(ms) as (client, _):
        client.get("/v2/models/tiny", headers={"authorization": "Bearer wrong-token-0123456789"})
        client.post("/v2/repository/models/tiny/versions", content=b"junk")
    assert MANAGEMENT_TOKEN not in caplog.text and "wrong-token" not in caplog.text


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "no inference token is set"),
    (["--enable-management"], "needs a management token"),
    (["--tls-cert", "x.pem"], "both --tls-cert and --tls-key"),
    (["--port", "70000"], "--port 70000 is not a port; give 0..65535"),
    (["--grpc-port", "-2"], "--grpc-port -2 is not a port"),
])
def test_serve_refuses_unsafe_or_bad_options(repo, args, message, capsys):
    assert main(["serve", str(repo), "--no-huge-pages", *args]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def _tls_server(repo, pki, *, mutual: bool):
    tls = TLS(certfile=pki["server"].with_suffix(".pem"), keyfile=pki["server"].with_suffix(".key"),
              client_ca=pki["ca"].with_suffix(".pem") if mutual else None)
    return live_server(ModelServer(repo, ServerSettings(poll_s=0)), tls=tls, grpc=True, token=None)


def _http_client(port, pki, cert: str | None):
    import gevent.ssl
    import tritonclient.http as th

    def factory():
        ctx = gevent.ssl.create_default_context(cafile=str(pki["ca"].with_suffix(".pem")))
        if cert:
            ctx.load_cert_chain(str(pki[cert].with_suffix(".pem")), str(pki[cert].with_suffix(".key")))
        return ctx
    return th.InferenceServerClient(f"127.0.0.1:{port}", ssl=True, ssl_context_factory=factory, network_timeout=10)


def _grpc_client(port, pki, cert: str | None):
    import tritonclient.grpc as tg

    kw = {}
    if cert:
        kw = dict(private_key=str(pki[cert].with_suffix(".key")), certificate_chain=str(pki[cert].with_suffix(".pem")))
    return tg.InferenceServerClient(f"127.0.0.1:{port}", ssl=True, root_certificates=str(pki["ca"].with_suffix(".pem")),
                                    **kw)


def _infer(module, client):
    x = feeds(seed=1)["input"]
    i = module.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return client.infer("tiny", [i]).as_numpy("output")


@pytest.mark.parametrize("mutual", [False, True])
def test_tls_and_mutual_tls_with_tritonclient(repo, tmp_path, mutual):
    import tritonclient.grpc as tg
    import tritonclient.http as th

    from tests.serving.tls_certs import make_pki

    pki = make_pki(tmp_path / "pki")
    with _tls_server(repo, pki, mutual=mutual) as (_, uv):
        port = uv.servers[0].sockets[0].getsockname()[1]
        gport = uv.config.app.state.grpc_port
        cert = "client" if mutual else None
        a = _infer(th, _http_client(port, pki, cert))
        b = _infer(tg, _grpc_client(gport, pki, cert))
        np.testing.assert_allclose(a, b, rtol=1e-6)
        if mutual:  # no client certificate, or one from another CA: refused by both
            for cert in (None, "rogue"):
                with pytest.raises(Exception):
                    _infer(th, _http_client(port, pki, cert))
                with pytest.raises(Exception):
                    _infer(tg, _grpc_client(gport, pki, cert))
