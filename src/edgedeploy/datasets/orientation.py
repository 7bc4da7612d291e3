"""Whole pages turned by 0, 90, 180 or 270 degrees clockwise, for the page-orientation model.

The label follows PP-LCNet's document-orientation classes: class ``"90"`` means the page was
turned 90 degrees *clockwise* (``cv2.ROTATE_90_CLOCKWISE``). PIL's ``Image.rotate(90)`` turns
counter-clockwise, which that model calls ``"270"``.
"""

from __future__ import annotations

from edgedeploy.datasets._common import check_size, rotate_clockwise, sample_rng, shuffled_slot
from edgedeploy.datasets.pages import render_page
from edgedeploy.datasets.samples import ClassSample

LABELS = ("0", "90", "180", "270")
PAGE_SIZE = (384, 512)  # portrait (width, height), dense with text


def make_orientation(n: int, seed: int) -> list[ClassSample]:
    """``n`` text-dense portrait pages turned clockwise by their label; each label is used
    ``n // 4`` or one more times."""
    check_size(n, seed)
    samples = []
    for index in range(n):
        label = LABELS[shuffled_slot(seed, "orient", index, len(LABELS)) % len(LABELS)]
        rng = sample_rng(seed, "orient", index)
        page, _, _ = render_page(rng, PAGE_SIZE, lines=(12, 18), text_px=(14, 22))
        samples.append(ClassSample(image=rotate_clockwise(page, int(label)), label=label,
                                   seed=seed, index=index))
    return samples
