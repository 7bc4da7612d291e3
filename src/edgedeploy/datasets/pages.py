"""Document pages: dark text lines on off-white paper, slightly skewed, noisy, sometimes blurred.

Truth per line: its quadrilateral (ink bounds plus 2 px, turned with the page) and its string.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edgedeploy.datasets._common import (add_noise, check_size, pil_to_bgr, random_line,
                                         rect_box, rotate_small, sample_rng)
from edgedeploy.datasets.fonts import find_fonts, load_font
from edgedeploy.datasets.samples import PageSample
from edgedeploy.errors import UserError

PAD_PX = 2  # a careful annotator's margin around the ink
LINE_GAP_PX = 6  # at least this much paper between one line's box and the next
MAX_SKEW_DEG = 2.0


def render_page(rng: np.random.Generator, size: tuple[int, int], *, lines: tuple[int, int],
                text_px: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """One page of ``size`` (width, height) px with ``lines`` (min, max) lines of text whose
    font size is within ``text_px`` (min, max) px. Returns (BGR image, boxes, strings)."""
    width, height = size
    fonts = find_fonts()
    # White or off-white paper: one grey level, slightly tinted.
    paper = tuple(int(v) for v in np.clip(rng.integers(236, 256) + rng.integers(-6, 7, size=3),
                                          0, 255))
    ink = tuple(int(v) for v in rng.integers(0, 60, size=3))
    image = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(image)

    # The skew moves corners by up to half the diagonal * sin(2 deg): keep clear of the edge.
    margin_x = int(width * rng.uniform(0.04, 0.08)) + 12
    margin_y = int(height * rng.uniform(0.04, 0.08)) + 12
    usable = height - 2 * margin_y
    fit = max(1, int(usable // (text_px[0] * 1.2 + LINE_GAP_PX + 2 * PAD_PX)))
    n_lines = min(int(rng.integers(lines[0], lines[1] + 1)), fit)
    pitch = usable / n_lines

    boxes, texts = [], []
    for i in range(n_lines):
        path = fonts[int(rng.integers(len(fonts)))]
        size_px = int(rng.integers(text_px[0], text_px[1] + 1))
        font = load_font(path, size_px)
        while size_px > 8 and sum(font.getmetrics()) + LINE_GAP_PX + 2 * PAD_PX > pitch:
            size_px -= 1
            font = load_font(path, size_px)
        line_height = sum(font.getmetrics())
        slack = max(0.0, pitch - line_height - LINE_GAP_PX - 2 * PAD_PX)
        y = margin_y + i * pitch + PAD_PX + rng.uniform(0, slack)
        x = margin_x + (rng.uniform(0, 0.15) * width if rng.random() < 0.3 else 0.0)
        text = random_line(rng, font, width - margin_x - x)
        draw.text((x, y), text, font=font, fill=ink, anchor="la")
        x1, y1, x2, y2 = draw.textbbox((x, y), text, font=font, anchor="la")
        boxes.append(rect_box(x1 - PAD_PX, y1 - PAD_PX, x2 + PAD_PX, y2 + PAD_PX))
        texts.append(text)

    bgr = pil_to_bgr(image)
    bgr, boxes = rotate_small(bgr, rng.uniform(-MAX_SKEW_DEG, MAX_SKEW_DEG), boxes,
                              border=paper[::-1])
    if rng.random() < 0.3:
        bgr = cv2.GaussianBlur(bgr, (3, 3), rng.uniform(0.4, 0.9))
    bgr = add_noise(bgr, rng, rng.uniform(2.0, 6.0))
    return bgr, boxes, texts


def make_pages(n: int, seed: int, *, size: tuple[int, int] = (640, 640),
               lines: tuple[int, int] = (6, 12), text_px: tuple[int, int] = (16, 32)
               ) -> list[PageSample]:
    """``n`` pages of ``size`` (width, height) px, the same for the same ``seed``."""
    check_size(n, seed)
    if len(size) != 2 or min(size) < 128:
        raise UserError(f"page size must be (width, height) of at least 128 px, got {size!r}")
    if not 1 <= lines[0] <= lines[1] or not 8 <= text_px[0] <= text_px[1]:
        raise UserError(f"need 1 <= lines min <= max and 8 <= text_px min <= max, "
                        f"got lines={lines!r}, text_px={text_px!r}")
    samples = []
    for index in range(n):
        rng = sample_rng(seed, "pages", index)
        image, boxes, texts = render_page(rng, tuple(size), lines=lines, text_px=text_px)
        samples.append(PageSample(image=image, boxes=boxes, texts=texts, seed=seed, index=index))
    return samples
