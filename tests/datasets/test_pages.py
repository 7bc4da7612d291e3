import re

import cv2
import numpy as np
import pytest
import shapely

from edgedeploy.datasets import make_pages
from edgedeploy.errors import UserError

TEXT = re.compile(r"[A-Za-z0-9,.:-]+( [A-Za-z0-9,.:-]+)*")


@pytest.fixture(scope="module")
def pages():
    return make_pages(4, seed=7)


def test_same_seed_same_bytes_and_index_independent_of_n(pages):
    again = make_pages(2, seed=7)
    for a, b in zip(pages, again):
        assert a.image.tobytes() == b.image.tobytes()
        assert a.texts == b.texts
        assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    other = make_pages(1, seed=8)[0]
    assert other.image.tobytes() != pages[0].image.tobytes()


def test_images_and_text(pages):
    for page in pages:
        assert page.image.dtype == np.uint8 and page.image.shape == (640, 640, 3)
        assert page.image.flags.c_contiguous
        assert 6 <= len(page.texts) <= 12 and len(page.boxes) == len(page.texts)
        for text in page.texts:
            assert TEXT.fullmatch(text), text  # no outer, double or odd spaces; plain ASCII


def test_boxes_are_clockwise_quads_inside_the_image(pages):
    skewed = False
    for page in pages:
        for box in page.boxes:
            assert box.dtype == np.float32 and box.shape == (4, 2)
            assert (box >= 0).all() and (box <= 640).all()
            x, y = box[:, 0], box[:, 1]
            # Shoelace with y pointing down: positive for clockwise on screen.
            assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0
            assert np.argmin(x + y) == 0  # starts top-left
            height = np.linalg.norm(box[3] - box[0])
            assert 10 <= height <= 45
            skewed |= abs(box[0, 1] - box[1, 1]) > 0.5
    assert skewed, "pages should be turned slightly"


def test_lines_do_not_overlap(pages):
    for page in pages:
        polys = [shapely.Polygon(b) for b in page.boxes]
        for i in range(len(polys)):
            for j in range(i + 1, len(polys)):
                assert polys[i].intersection(polys[j]).area == 0


def test_ink_lies_inside_the_boxes(pages):
    for page in pages:
        dark = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY) < 150
        inside = np.zeros(dark.shape, np.uint8)
        for box in page.boxes:
            one = np.zeros(dark.shape, np.uint8)
            cv2.fillPoly(one, [np.round(box).astype(np.int32)], 1)
            assert dark[one > 0].mean() > 0.05  # each box holds text
            inside |= one
        assert dark[inside == 0].sum() <= 0.005 * dark.sum()


def test_size_and_bad_arguments():
    page = make_pages(1, seed=0, size=(320, 240))[0]
    assert page.image.shape == (240, 320, 3)
    with pytest.raises(UserError):
        make_pages(1, seed=0, size=(10, 10))
    with pytest.raises(UserError, match="seed"):
        make_pages(1, seed=-1)
    with pytest.raises(UserError):
        make_pages(-2, seed=0)
