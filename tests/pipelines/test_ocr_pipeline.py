"""The OCR system (det → cls → rec) as concurrent pipeline stages, on real models and generated pages."""

from __future__ import annotations

import cv2
import pytest

from edgedeploy import datasets
from edgedeploy.pipelines import ImageFolderSource, Pipeline
from edgedeploy.pipelines.ocr import ocr_stages


@pytest.mark.integration
def test_ocr_pipeline_reads_generated_pages(tmp_path):
    pages = datasets.generate("pages", 2, seed=4)
    for i, page in enumerate(pages):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), page.image)
    report = Pipeline(ImageFolderSource(tmp_path), ocr_stages(), queue_size=2).run()
    assert report.stats["processed"] == 2 and report.stats["dropped"] == 0
    assert set(report.stats["stages"]) == {"detect", "cls", "rec"}
    for page, event in zip(pages, sorted(report.events, key=lambda e: e["frame"])):
        read = [line["text"] for line in event["lines"]]
        hits = sum(t in read for t in page.texts)
        assert hits >= len(page.texts) - 1, (page.texts, read)


@pytest.mark.integration
def test_ocr_pipeline_fast_preset(tmp_path):
    pytest.importorskip("openvino")
    page = datasets.generate("pages", 1, seed=5)[0]
    cv2.imwrite(str(tmp_path / "000.png"), page.image)
    stages = ocr_stages(engine="openvino", threads=2, preset="fast")
    assert stages[0].path and stages[0].path.endswith(".int8.onnx") and stages[-1].precision == "bf16"
    report = Pipeline(ImageFolderSource(tmp_path), stages, queue_size=2).run()
    read = [line["text"] for line in report.events[0]["lines"]]
    assert sorted(read) == sorted(page.texts)


def test_ocr_stages_rejects_an_unknown_preset():
    from edgedeploy.errors import UserError

    with pytest.raises(UserError, match="fastest"):
        ocr_stages(preset="fastest")
