"""Start to finish on a model edgedeploy has never seen: nn.Module → optimize INT8 from an image folder →
deploy (real benchmark harness) → serve (its own process) → one inference through the HTTP API."""

from __future__ import annotations

import shutil
import textwrap

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")
httpx = pytest.importorskip("httpx")

from edgedeploy import cards, engines  # noqa: E402
from edgedeploy.optimize import optimize  # noqa: E402
from tests.byo.models import CARD, build, images, to_input  # noqa: E402


@pytest.mark.integration
def test_byo_classifier_optimized_deployed_and_served(tmp_path):
    from edgedeploy.cli import main
    from tests.serving.conftest import serve_process

    (tmp_path / "imgs").mkdir()
    for i, im in enumerate(images(64, 12)):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.jpg"), im)
    r = optimize(build("resnet"), tmp_path / "cls.int8.onnx", engine="onnxruntime", calib=tmp_path / "imgs",
                 card=cards.parse({**CARD, "task": "classification"}), max_accuracy_drop=2.0, latency_rounds=1,
                 goal="size")
    assert r.precision == "int8" and r.accuracy_drop_points <= 2.0
    (tmp_path / "deploy.yaml").write_text(textwrap.dedent(f"""\
        model: {tmp_path / 'cls.int8.onnx'}
        deployment:
          hardware: local
          precision: fp32
          thread_num: 1
          engines: [onnxruntime]
        performance:
          target_latency: 1s
          max_memory: 1GB
        search:
          runs: 5
          time_budget: 0.5s
        """))
    out = tmp_path / "dep"
    assert main(["deploy", str(tmp_path / "deploy.yaml"), "-o", str(out)]) == 0
    shutil.copytree(out, tmp_path / "repo" / "byo" / "1")
    x = to_input(images(1, 77)).numpy()
    with engines.load(str(out / "model.onnx"), engine="onnxruntime") as s:
        name, want = s.inputs[0].name, next(iter(s.run({s.inputs[0].name: x}).values()))
    with serve_process(tmp_path / "repo") as (info, _):
        body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        resp = httpx.post(f"{info['url']}/v2/models/byo/infer", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    got = np.asarray(resp.json()["outputs"][0]["data"], np.float32).reshape(want.shape)
    assert np.allclose(got, want, atol=1e-4) and got.argmax() == want.argmax()
