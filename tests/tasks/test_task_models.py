"""The tasks on the real zoo models (ONNX Runtime, 2 threads), on pages rendered here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgedeploy import presets, tasks

pytestmark = pytest.mark.integration

WORDS = ["Hello World 2026", "edgedeploy", "MSKU 3054387", "Port Gate 7", "ISO 6346", "x=42", "Jetson Nano"]


@pytest.fixture(scope="module")
def det(load):
    model, session = load("ppocrv6-det")
    return tasks.build("det", session, model)


@pytest.fixture(scope="module")
def rec(load):
    model, session = load("ppocrv6-rec")
    return tasks.build("rec", session, model)


@pytest.fixture(scope="module")
def cls(load):
    model, session = load("ppocr-cls")
    return tasks.build("cls", session, model)


def _iou(quad: np.ndarray, box: np.ndarray) -> float:
    x0, y0 = quad.min(0)
    x1, y1 = quad.max(0)
    iw = max(0.0, min(x1, box[2]) - max(x0, box[0]))
    ih = max(0.0, min(y1, box[3]) - max(y0, box[1]))
    inter = iw * ih
    return inter / ((x1 - x0) * (y1 - y0) + (box[2] - box[0]) * (box[3] - box[1]) - inter)


@pytest.mark.parametrize("font_size, spacing", [(26, 2.2), (16, 1.8)])
def test_det_finds_every_line(det, render_lines, page_lines, font_size, spacing):
    page = render_lines(page_lines * 2, font_size=font_size, spacing=spacing, size=(640, 640))
    keep = page.boxes[:, 3] < 630  # lines that fit on the page
    result = det(page.image)
    assert len(result) == keep.sum()
    # Reading order: box i is rendered line i.
    for quad, box in zip(result.boxes, page.boxes[keep]):
        assert _iou(quad, box) >= 0.5
    assert (result.scores > 0.5).all()


def test_rec_reads_rendered_words(rec, render_word):
    result = rec([render_word(w) for w in WORDS])  # 7 crops: two batches
    assert result.texts == WORDS
    assert min(result.scores) > 0.9


def test_cls_tells_upright_from_flipped(cls, render_word):
    line = render_word("Hello World 2026")
    flipped = cv2.rotate(line, cv2.ROTATE_180)
    result = cls([line, flipped])
    assert result.labels == ["0", "180"]
    assert min(result.scores) > 0.9
    fixed = cls.upright([line, flipped], result)
    assert fixed[0] is line
    np.testing.assert_array_equal(fixed[1], line)


@pytest.mark.parametrize("label, rotation", [
    ("0", None), ("90", cv2.ROTATE_90_CLOCKWISE), ("180", cv2.ROTATE_180), ("270", cv2.ROTATE_90_COUNTERCLOCKWISE),
])
def test_orientation_gets_each_rotation(load, page, label, rotation):
    model, session = load("pplcnet-orientation")
    orient = tasks.build("orientation", session, model)
    img = page.image if rotation is None else cv2.rotate(page.image, rotation)
    result = orient(img)
    assert result.label == label
    assert result.score > 0.5
    np.testing.assert_array_equal(tasks.upright(img, result.label), page.image)


def test_layout_finds_text(load, page):
    model, session = load("picodet-layout")
    layout = tasks.build("layout", session, model)
    result = layout(page.image)
    assert "text" in result.labels
    # The text region covers the rendered lines, in original pixels.
    x0, y0, x1, y1 = result.boxes[result.labels.index("text")]
    ink = page.boxes
    assert x0 <= ink[:, 0].min() + 10 and y0 <= ink[:, 1].min() + 10
    assert x1 >= ink[:, 2].max() - 10 and y1 >= ink[:, 3].max() - 10


def test_ocr_reads_a_page(det, cls, rec, page, page_lines):
    ocr = tasks.OCRSystem(det, cls, rec)
    result = ocr(page.image)
    assert result.texts == list(page_lines)
    assert set(result.timings) == {"det", "crop", "cls", "rec"}
    assert all(t.model_ms > 0 for k, t in result.timings.items() if k != "crop")
    for line, box in zip(result.lines, page.boxes):
        assert _iou(line.box, box) >= 0.5


def test_ocr_reads_an_upside_down_line(det, cls, rec, render_lines):
    line = render_lines(["Gate camera 3 frame 1024"], size=(480, 80), origin=(20, 20))
    upside_down = cv2.rotate(line.image, cv2.ROTATE_180)
    assert tasks.OCRSystem(det, cls, rec)(upside_down).texts == ["Gate camera 3 frame 1024"]
    assert tasks.OCRSystem(det, None, rec)(line.image).texts == ["Gate camera 3 frame 1024"]


def test_fast_ocr_preset_reads_a_page_as_the_fp32_system_does(page, page_lines):
    # INT8 det is made once (a few minutes) and cached; later runs load it.
    pytest.importorskip("openvino")
    result = presets.fast_ocr(engine="openvino", threads=2)(page.image)
    assert result.texts == list(page_lines)
    for line, box in zip(result.lines, page.boxes):
        assert _iou(line.box, box) >= 0.5
