import collections
import re

import cv2
import numpy as np
import pytest

from edgedeploy.datasets import make_lines, make_rec_lines
from edgedeploy.errors import UserError


@pytest.fixture(scope="module")
def rec_lines():
    return make_rec_lines(20, seed=5)


def test_rec_lines(rec_lines):
    for line in rec_lines:
        assert line.image.dtype == np.uint8 and line.image.shape[0] == 48
        assert line.image.shape[2] == 3 and line.image.shape[1] > 40
        assert re.fullmatch(r"[A-Za-z0-9,.:-]+( [A-Za-z0-9,.:-]+)*", line.text)
        dark = cv2.cvtColor(line.image, cv2.COLOR_BGR2GRAY) < 140
        rows = np.nonzero(dark.any(axis=1))[0]
        assert rows.size and rows[0] > 0 and rows[-1] < 47  # nothing cut at top or bottom
    assert len({line.text for line in rec_lines}) > 15
    assert max(len(line.text.split()) for line in rec_lines) >= 3


def test_flips_match_labels(rec_lines):
    samples = make_lines(20, seed=5)
    assert collections.Counter(s.label for s in samples) == {"0": 10, "180": 10}
    for sample, line in zip(samples, rec_lines):
        expected = line.image if sample.label == "0" else cv2.rotate(line.image, cv2.ROTATE_180)
        assert np.array_equal(sample.image, expected)


def test_flip_ratio():
    assert {s.label for s in make_lines(6, seed=1, flip_ratio=0.0)} == {"0"}
    assert {s.label for s in make_lines(6, seed=1, flip_ratio=1.0)} == {"180"}
    assert sum(s.label == "180" for s in make_lines(40, seed=1, flip_ratio=0.25)) == 10
    with pytest.raises(UserError, match="flip_ratio"):
        make_lines(2, seed=1, flip_ratio=1.5)


def test_deterministic():
    a, b = make_lines(3, seed=9), make_lines(3, seed=9)
    assert [x.image.tobytes() for x in a] == [x.image.tobytes() for x in b]
