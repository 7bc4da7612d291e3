"""Crops of single text lines, 48 px high: upright or turned 180 degrees (for the text-line
orientation model), and upright with their string (for the recogniser)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edgedeploy.datasets._common import (add_noise, check_size, pil_to_bgr, random_line,
                                         rotate_clockwise, sample_rng, shuffled_slot)
from edgedeploy.datasets.fonts import find_fonts, load_font
from edgedeploy.datasets.samples import ClassSample, LineSample
from edgedeploy.errors import UserError

LINE_HEIGHT_PX = 48
FLIP_BLOCK = 20  # flip_ratio is honoured exactly in every block of this many lines


def render_line(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One upright text line on light paper: (BGR image 48 px high, its string)."""
    fonts = find_fonts()
    font = load_font(fonts[int(rng.integers(len(fonts)))], int(rng.integers(26, 34)))
    text = random_line(rng, font, rng.uniform(200, 720))
    left, right = (int(v) for v in rng.integers(4, 17, size=2))
    width = math.ceil(font.getlength(text)) + left + right
    paper = tuple(int(v) for v in rng.integers(215, 256, size=3))
    ink = tuple(int(v) for v in rng.integers(0, 70, size=3))
    image = Image.new("RGB", (width, LINE_HEIGHT_PX), paper)
    # Centre the ascender-to-descender band, give or take 2 px.
    ascent, descent = font.getmetrics()
    top = (LINE_HEIGHT_PX - ascent - descent) / 2 + rng.uniform(-2, 2)
    ImageDraw.Draw(image).text((left, top), text, font=font, fill=ink, anchor="la")
    bgr = pil_to_bgr(image)
    if rng.random() < 0.3:
        bgr = cv2.GaussianBlur(bgr, (3, 3), rng.uniform(0.4, 0.9))
    return add_noise(bgr, rng, rng.uniform(2.0, 6.0)), text


def make_rec_lines(n: int, seed: int) -> list[LineSample]:
    """``n`` upright line crops with the string written in each, for recognition."""
    check_size(n, seed)
    samples = []
    for index in range(n):
        image, text = render_line(sample_rng(seed, "lines", index))
        samples.append(LineSample(image=image, text=text, seed=seed, index=index))
    return samples


def make_lines(n: int, seed: int, *, flip_ratio: float = 0.5) -> list[ClassSample]:
    """``n`` line crops labelled ``"0"`` (upright) or ``"180"`` (turned upside down).

    ``flip_ratio`` of them are turned, as nearly as whole lines allow in every block of 20
    (so 10 of every 20 at 0.5), in random order; the same ``seed`` gives the same lines as :func:`make_rec_lines`.
    """
    check_size(n, seed)
    if not 0.0 <= flip_ratio <= 1.0:
        raise UserError(f"flip_ratio must be between 0 and 1, got {flip_ratio!r}")
    samples = []
    for index, line in enumerate(make_rec_lines(n, seed)):
        slot = shuffled_slot(seed, "flips", index, FLIP_BLOCK)
        # Slot s is flipped when floor(r*s) steps up at s+1: r*k of any k slots, +-1.
        flipped = math.floor((slot + 1) * flip_ratio) > math.floor(slot * flip_ratio)
        image = rotate_clockwise(line.image, 180) if flipped else line.image
        samples.append(ClassSample(image=image, label="180" if flipped else "0", seed=seed,
                                   index=index))
    return samples
