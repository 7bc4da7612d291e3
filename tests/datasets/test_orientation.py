import collections

import cv2
import numpy as np
import pytest

from edgedeploy.datasets import make_orientation
from edgedeploy.datasets._common import rotate_clockwise, sample_rng
from edgedeploy.datasets.orientation import PAGE_SIZE
from edgedeploy.datasets.pages import render_page
from edgedeploy.errors import UserError


def test_rotate_clockwise_is_cv2s_clockwise():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(rotate_clockwise(image, 90), cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE))
    assert np.array_equal(rotate_clockwise(image, 180), cv2.rotate(image, cv2.ROTATE_180))
    assert np.array_equal(rotate_clockwise(image, 270),
                          cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE))
    assert np.array_equal(rotate_clockwise(image, 0), image)
    with pytest.raises(UserError):
        rotate_clockwise(image, 45)


def test_labels_are_balanced_and_stable():
    samples = make_orientation(8, seed=3)
    assert collections.Counter(s.label for s in samples) == {"0": 2, "90": 2, "180": 2, "270": 2}
    assert [s.label for s in make_orientation(5, seed=3)] == [s.label for s in samples[:5]]
    assert [s.label for s in samples[:4]] != ["0", "90", "180", "270"] or \
        [s.label for s in samples[4:]] != ["0", "90", "180", "270"]  # shuffled, not cyclic


def test_label_is_the_clockwise_turn_of_the_page():
    turns = {"0": None, "90": cv2.ROTATE_90_CLOCKWISE, "180": cv2.ROTATE_180,
             "270": cv2.ROTATE_90_COUNTERCLOCKWISE}
    for sample in make_orientation(4, seed=11):
        page, _, _ = render_page(sample_rng(11, "orient", sample.index), PAGE_SIZE,
                                 lines=(12, 18), text_px=(14, 22))
        code = turns[sample.label]
        expected = page if code is None else cv2.rotate(page, code)
        assert np.array_equal(sample.image, expected), sample.label
        portrait = sample.image.shape[0] > sample.image.shape[1]
        assert portrait == (sample.label in ("0", "180"))
