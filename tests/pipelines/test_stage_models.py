"""Stages open their models through a deployment plan: a deployment directory (verified), or
``engine: auto``; and the read stage's batching of one frame's crops changes no output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.pipelines.gate import ReadStage
from edgedeploy.pipelines.ocr import DetectStage
from edgedeploy.pipelines.stage import Frame


def _line(text: str, scale: float = 1.0) -> np.ndarray:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    img = np.full((h + base + 16, w + 16, 3), 50, np.uint8)
    cv2.putText(img, text, (8, h + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 2)
    return img


@pytest.mark.integration
def test_batching_one_frames_crops_gives_the_outputs_of_reading_each_alone():
    texts = ["MSCU", "TGHU", "CSQU", "305438 4", "123456 7", "MSCU 305438 4", "ABCU 000001 5"]
    crops = [_line(t, s) for t, s in zip(texts, (1.0, 1.0, 0.9, 1.0, 1.0, 0.8, 0.8))]
    batched, alone = ReadStage(engine="onnxruntime", tracker=None), ReadStage(engine="onnxruntime", tracker=None,
                                                                             batch_crops=False)
    batched.open(None)
    alone.open(None)
    widths = {batched.rec.padded_width(c) for c in crops}
    assert len(widths) < len(crops)  # some crops share a padded width: they go in one call
    t1, s1, p1 = batched._recognise(crops)
    t2, s2, p2 = alone._recognise(crops)
    assert batched.calls == len(widths) < alone.calls == len(crops)
    assert t1 == t2
    np.testing.assert_allclose(s1, s2, atol=1e-4)
    for a, b in zip(p1, p2):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.integration
def test_a_deployment_directory_is_opened_as_planned_and_verified(tmp_path):
    from edgedeploy.deploy import manifest
    from edgedeploy.engines import EngineOptions
    from edgedeploy.ingest import load_model
    from edgedeploy.plan import DeploymentPlan, ModelFile

    model = load_model("ppocrv6-det")
    plan = DeploymentPlan(engine="onnxruntime", precision="fp32", model=ModelFile.of(model.path),
                          options=EngineOptions(threads=1, memory_optimization=True))
    out = manifest.write(tmp_path / "det", model=model, resolved={}, record={}, plan=plan)
    options = {"limit_type": "max", "limit_side_len": 320}
    deployed, named = DetectStage(model=str(out), **options), DetectStage(engine="onnxruntime", **options)
    deployed.open(None)
    named.open(None)
    assert deployed.opened.plan.options.memory_optimization  # the plan as recorded, every option
    assert deployed.opened.how.startswith(f"deployment {out}")
    assert deployed.det.session.settings["enable_cpu_mem_arena"] is False
    image = np.full((360, 640, 3), 60, np.uint8)
    cv2.putText(image, "MSCU 305438 4", (100, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (230, 230, 230), 3)
    a, b = deployed.process(Frame(0, image.copy())), named.process(Frame(0, image.copy()))
    assert len(a.boxes) >= 1
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)

    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes()[:-10])  # tampered with
    with pytest.raises(UserError, match="model.onnx"):
        DetectStage(model=str(out)).open(None)


@pytest.mark.integration
def test_a_signed_deployment_opens_only_with_a_key_that_signed_it(tmp_path):
    from edgedeploy.deploy import manifest
    from edgedeploy.ingest import load_model
    from edgedeploy.pipelines import ArraySource, Pipeline
    from edgedeploy.plan import DeploymentPlan, ModelFile
    from edgedeploy.security import keys

    mine, other = keys.generate_keypair(tmp_path / "mine"), keys.generate_keypair(tmp_path / "other")
    model = load_model("ppocrv6-det")
    plan = DeploymentPlan(engine="onnxruntime", precision="fp32", model=ModelFile.of(model.path), options={"threads": 1})
    out = manifest.write(tmp_path / "det", model=model, resolved={}, record={}, plan=plan,
                         signing_key=keys.load_private_key(mine[0]))

    def run(trusted):
        pipe = Pipeline(ArraySource([np.zeros((90, 160, 3), np.uint8)]), [DetectStage(model=str(out))],
                        trusted_keys=trusted)
        return pipe.run().startup[0]["how"]

    assert "signed by trusted key" in run(str(mine[1]))
    assert "not signature-checked" in run(None)
    with pytest.raises(UserError, match="verification failed"):
        run(str(other[1]))


@pytest.mark.integration
def test_engine_auto_opens_the_measured_choice_and_says_so():
    stage = ReadStage(tracker=None)  # engine auto is the default
    stage.open(None)
    assert stage.opened.how.startswith("engine auto: ")
    assert stage.opened.plan.engine.value in ("onnxruntime", "openvino")
    again = ReadStage(tracker=None)
    again.open(None)
    assert "cached choice" in again.opened.how and again.opened.plan == stage.opened.plan

    from edgedeploy.pipelines import ArraySource, Pipeline

    seen, frames_at_start = [], []
    pipe = Pipeline(ArraySource([np.zeros((90, 160, 3), np.uint8)] * 3), [again])
    report = pipe.run(on_start=lambda startup: (seen.extend(startup), frames_at_start.append(pipe.metrics.captured)))
    assert frames_at_start == [0] and seen == report.startup  # the start-up report, before the first frame
    assert seen[0]["stage"] == "read" and seen[0]["how"] == again.opened.how and report.stats["processed"] == 3
