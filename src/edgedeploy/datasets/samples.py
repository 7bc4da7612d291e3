"""The samples the generators return: an image (uint8 BGR, OpenCV's convention) and its truth.

Boxes are float32 ``(4, 2)`` quadrilaterals in pixel coordinates of the final image, points
clockwise from the top-left one (x right, y down). ``seed`` and ``index`` regenerate a
sample: sample ``index`` of ``make_X(n, seed)`` is the same whatever ``n`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PageSample:
    """A document page; ``boxes[i]`` holds the text line ``texts[i]``."""

    image: np.ndarray
    boxes: list[np.ndarray]
    texts: list[str]
    seed: int
    index: int = 0


@dataclass(frozen=True, eq=False)
class DocumentSample:
    """A page laid out in blocks: lines as in :class:`PageSample`, and ``blocks[i]`` (the
    bounds of a paragraph's or title's lines) of class ``block_labels[i]`` ("text", "title")."""

    image: np.ndarray
    boxes: list[np.ndarray]
    texts: list[str]
    blocks: list[np.ndarray]
    block_labels: list[str]
    seed: int
    index: int = 0


@dataclass(frozen=True, eq=False)
class ClassSample:
    """An image with one class label (e.g. ``"90"``: turned 90 degrees clockwise)."""

    image: np.ndarray
    label: str
    seed: int
    index: int = 0


@dataclass(frozen=True, eq=False)
class LineSample:
    """A crop of one text line and the string written in it."""

    image: np.ndarray
    text: str
    seed: int
    index: int = 0


@dataclass(frozen=True, eq=False)
class ContainerSample:
    """A container panel with its ISO 6346 ``code`` (11 characters, no spaces).

    ``texts[i]`` is the painted line inside ``boxes[i]`` as a reader sees it, e.g.
    ``"CSQU 305438 3"``, or ``"CSQU"`` and ``"305438 3"`` when painted on two lines.
    """

    image: np.ndarray
    code: str
    boxes: list[np.ndarray]
    texts: list[str]
    seed: int
    index: int = 0


SAMPLE_TYPES = {cls.__name__: cls for cls in (PageSample, DocumentSample, ClassSample, LineSample, ContainerSample)}
