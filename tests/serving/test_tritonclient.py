"""The official Triton clients (tritonclient http and grpc) against `edgedeploy serve` on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import INFERENCE_TOKEN, MANAGEMENT_TOKEN, feeds, serve_process

tg = pytest.importorskip("tritonclient.grpc")
th = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402



def auth() -> dict:  # a fresh dict each call: tritonclient.http adds its own headers to the one it is given
    return {"authorization": f"Bearer {INFERENCE_TOKEN}"}


def admin() -> dict:
    return {"authorization": f"Bearer {MANAGEMENT_TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.serving.conftest import add_version

    root = tmp_path_factory.mktemp("triton")
    repo = root / "repo"
    add_version(repo, "tiny", 1)
    add_version(repo, "other", 1)
    (root / "m").write_text(MANAGEMENT_TOKEN)
    (root / "i").write_text(INFERENCE_TOKEN)
    with serve_process(repo, "--enable-management", "--management-token-file", str(root / "m"),
                       "--token-file", str(root / "i")) as (info, _):
        yield info


def _inputs(module, x):
    i = module.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return [i]


def test_http_and_grpc_give_the_same_answer(server):
    x = feeds(seed=5, n=2)["input"]
    h = th.InferenceServerClient(f"127.0.0.1:{server['port']}")
    g = tg.InferenceServerClient(f"127.0.0.1:{server['grpc_port']}")
    assert h.is_server_live() and g.is_server_live()
    assert h.is_model_ready("tiny", headers=auth()) and g.is_model_ready("tiny", headers=auth())
    a = h.infer("tiny", _inputs(th, x), headers=auth()).as_numpy("output")
    res = g.infer("tiny", _inputs(tg, x), headers=auth(), request_id="r1")
    assert res.get_response().id == "r1" and res.get_response().model_version == "1"
    np.testing.assert_allclose(a, res.as_numpy("output"), rtol=1e-6)
    meta = g.get_model_metadata("tiny", headers=auth())
    assert meta.inputs[0].name == "input" and list(meta.inputs[0].shape) == [-1, 3, -1, -1]


def test_triton_extensions_over_http(server):
    h = th.InferenceServerClient(f"127.0.0.1:{server['port']}")
    h.infer("tiny", _inputs(th, feeds()["input"]), headers=auth())
    config = h.get_model_config("tiny", headers=auth())
    assert config["input"][0] == {"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 3, -1, -1]}
    stats = h.get_inference_statistics("tiny", headers=auth())["model_stats"][0]
    assert stats["name"] == "tiny" and stats["inference_stats"]["success"]["count"] >= 1
    index = h.get_model_repository_index(headers=admin())
    assert {(m["name"], m["version"]) for m in index} >= {("tiny", "1"), ("other", "1")}
    h.load_model("other", headers=admin())
    h.unload_model("other", headers=admin())
    with pytest.raises(InferenceServerException, match="403"):
        h.load_model("other", headers=auth())  # the inference token does not manage


def test_errors_and_auth_reach_the_clients(server):
    h = th.InferenceServerClient(f"127.0.0.1:{server['port']}")
    g = tg.InferenceServerClient(f"127.0.0.1:{server['grpc_port']}")
    x = feeds()["input"]
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        h.infer("nope", _inputs(th, x), headers=auth())
    with pytest.raises(InferenceServerException, match="NOT_FOUND.*unknown model 'nope'"):
        g.infer("nope", _inputs(tg, x), headers=auth())
    with pytest.raises(InferenceServerException, match="401|missing or wrong token"):
        h.infer("tiny", _inputs(th, x))
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        g.infer("tiny", _inputs(tg, x))
    bad = tg.InferInput("input", [1, 4, 8, 8], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(InferenceServerException, match="INVALID_ARGUMENT"):
        g.infer("tiny", [bad], headers=auth())


def test_checked_in_grpc_stubs_match_the_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    src = Path(__file__).resolve().parents[2] / "src"
    proto = "edgedeploy/serving/kserve_v2/grpc_predict_v2.proto"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"--python_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", str(src / proto)], check=True)
    for name in ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py"):
        fresh = (tmp_path / "edgedeploy/serving/kserve_v2" / name).read_text()
        fresh = fresh.replace("_descriptor_pool.Default().AddSerializedFile", "_descriptor_pool.DescriptorPool().AddSerializedFile")
        assert fresh == (src / "edgedeploy/serving/kserve_v2" / name).read_text(), f"regenerate {name}: scripts/gen_grpc.sh"
