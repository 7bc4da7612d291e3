import cv2
import numpy as np
import pytest

from edgedeploy.datasets import make_container_panels
from edgedeploy.datasets.iso6346 import is_valid


@pytest.fixture(scope="module")
def panels():
    return make_container_panels(8, seed=2)


def test_codes_and_lines(panels):
    for panel in panels:
        assert panel.image.dtype == np.uint8 and panel.image.shape == (480, 640, 3)
        assert is_valid(panel.code) and len(panel.code) == 11
        assert len(panel.boxes) == len(panel.texts) in (1, 2)
        assert "".join(panel.texts).replace(" ", "") == panel.code
        assert panel.texts[-1].endswith(f"{panel.code[4:10]} {panel.code[10]}")
    assert {len(p.texts) for p in panels} == {1, 2}


def test_boxes_hold_the_lettering(panels):
    for panel in panels:
        gray = cv2.cvtColor(panel.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        mask = np.zeros(gray.shape, np.uint8)
        for box in panel.boxes:
            assert box.shape == (4, 2) and (box >= 0).all()
            assert (box[:, 0] <= 640).all() and (box[:, 1] <= 480).all()
            cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)

        def spread(values):
            return np.percentile(values, 95) - np.percentile(values, 5)
        # Paint against steel inside the boxes; only ribs, dirt and light outside.
        assert spread(gray[mask > 0]) > spread(gray[mask == 0]) + 25, panel.code


def test_deterministic_and_varied(panels):
    again = make_container_panels(2, seed=2)
    assert [p.image.tobytes() for p in again] == [p.image.tobytes() for p in panels[:2]]
    assert len({p.code for p in panels}) == len(panels)
    mean_colours = np.array([p.image.reshape(-1, 3).mean(axis=0) for p in panels])
    assert np.ptp(mean_colours, axis=0).max() > 60  # not all the same paint
