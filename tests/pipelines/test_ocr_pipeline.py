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
