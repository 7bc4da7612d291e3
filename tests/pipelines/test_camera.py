"""The seed's EdgeInferenceSystem as a base class: subclassed, run alone and as a pipeline stage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgedeploy.pipelines import ArraySource, Pipeline
from edgedeploy.pipelines.camera import EdgeInferenceSystem


class Classifier(EdgeInferenceSystem):
    def preprocess(self, frame):
        x = cv2.resize(frame, (32, 32)).astype(np.float32) / 255
        return x.transpose(2, 0, 1)[None]

    def postprocess(self, results):
        return {"label": int(results.argmax()), "score": float(results.max())}

    def events(self, result, frame):
        return [{"type": "label", "frame": frame.index, **result}]


def test_subclass_runs_a_frame(tiny_onnx):
    system = Classifier(str(tiny_onnx), engine="onnxruntime")
    out = system.process_frame(np.full((48, 64, 3), 128, np.uint8))
    assert set(out) == {"label", "score"} and 0 <= out["label"] < 4
    assert system.config.use_gpu()  # as the seed asks; without a GPU it ran on the CPU


def test_base_class_says_what_to_write(tiny_onnx):
    with pytest.raises(NotImplementedError, match="preprocess"):
        EdgeInferenceSystem(str(tiny_onnx)).process_frame(np.zeros((8, 8, 3), np.uint8))


def test_as_a_pipeline_stage(tiny_onnx):
    stage = Classifier(str(tiny_onnx)).as_stage("cls")
    report = Pipeline(ArraySource([np.full((40, 40, 3), v, np.uint8) for v in (0, 120, 250)]), [stage]).run()
    assert [e["frame"] for e in report.events] == [0, 1, 2]
    assert report.stats["stages"]["cls"]["p50_ms"] is not None
