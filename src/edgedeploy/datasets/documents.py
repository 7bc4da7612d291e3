"""Document pages laid out in paragraphs, for layout models: an optional title, then blocks of
tightly spaced lines with blank space between them, on a portrait (A4-shaped) page.

The ``pages`` data set spreads single lines over the page for detection and recognition;
a layout model (trained on documents such as CDLA) looks for paragraphs, which those pages
do not have. Truth here: each line's quad and string (as for ``pages``) and each block's
quad with its class ("title" or "text"), the bounds of its lines' boxes.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edgedeploy.datasets._common import (add_noise, check_size, pil_to_bgr, random_line,
                                         rect_box, rotate_small, sample_rng)
from edgedeploy.datasets.fonts import find_fonts, load_font
from edgedeploy.datasets.samples import DocumentSample

PAGE_SIZE = (600, 848)  # width, height: A4 at about 72 dpi
PAD_PX = 2
BODY_PX = (13, 18)
TITLE_PX = (22, 30)
MAX_SKEW_DEG = 1.0
TITLE_FACES = ("DejaVuSans-Bold", "DejaVuSerif-Bold", "DejaVuSansCondensed-Bold")


def _paragraph(rng: np.random.Generator, font, width: float, lines: int) -> list[str]:
    """``lines`` lines of running text: all but the last nearly fill ``width`` px."""
    out = []
    for i in range(lines):
        text = random_line(rng, font, width)
        if i < lines - 1:  # a full line: keep adding words while they fit
            while True:
                longer = f"{text} {random_line(rng, font, width * 0.2)}"
                if font.getlength(longer) > width:
                    break
                text = longer
        out.append(text)
    return out


def render_document(rng: np.random.Generator, size: tuple[int, int] = PAGE_SIZE):
    """One page: (BGR image, line boxes, line strings, block boxes, block labels)."""
    width, height = size
    paper = tuple(int(v) for v in np.clip(rng.integers(236, 256) + rng.integers(-6, 7, size=3), 0, 255))
    ink = tuple(int(v) for v in rng.integers(0, 60, size=3))
    image = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(image)
    margin_x = int(width * rng.uniform(0.07, 0.12))
    top, bottom = int(height * rng.uniform(0.06, 0.1)), height - int(height * rng.uniform(0.06, 0.1))
    body_font = load_font(find_fonts()[int(rng.integers(len(find_fonts())))],
                          int(rng.integers(BODY_PX[0], BODY_PX[1] + 1)))
    pitch = sum(body_font.getmetrics()) * rng.uniform(1.15, 1.5)
    indented = bool(rng.random() < 0.5)  # paragraphs start with an indent, or not
    boxes, texts, blocks, labels = [], [], [], []

    def put(lines: list[str], font, y: float, x: float, line_pitch: float, label: str) -> float:
        first = len(boxes)
        for k, text in enumerate(lines):
            indent = x + (font.size * 2 if label == "text" and k == 0 and indented else 0)
            draw.text((indent, y), text, font=font, fill=ink, anchor="la")
            x1, y1, x2, y2 = draw.textbbox((indent, y), text, font=font, anchor="la")
            boxes.append(rect_box(x1 - PAD_PX, y1 - PAD_PX, x2 + PAD_PX, y2 + PAD_PX))
            texts.append(text)
            y += line_pitch
        corners = np.concatenate(boxes[first:])
        blocks.append(rect_box(*corners.min(0), *corners.max(0)))
        labels.append(label)
        return y

    y = float(top)
    if rng.random() < 0.6:
        faces = find_fonts(TITLE_FACES)
        font = load_font(faces[int(rng.integers(len(faces)))], int(rng.integers(TITLE_PX[0], TITLE_PX[1] + 1)))
        title = random_line(rng, font, (width - 2 * margin_x) * 0.8)
        y = put([title], font, y, margin_x, sum(font.getmetrics()) * 1.3, "title") + pitch
    while True:
        n = int(rng.integers(2, 8))
        n = min(n, int((bottom - y - sum(body_font.getmetrics())) // pitch) + 1)
        if n < 2:
            break
        lines = _paragraph(rng, body_font, width - 2 * margin_x - body_font.size * 2, n)
        y = put(lines, body_font, y, margin_x, pitch, "text") + pitch * rng.uniform(0.8, 1.6)

    bgr = pil_to_bgr(image)
    angle = rng.uniform(-MAX_SKEW_DEG, MAX_SKEW_DEG)
    bgr, moved = rotate_small(bgr, angle, boxes + blocks, border=paper[::-1])
    boxes, blocks = moved[:len(boxes)], moved[len(boxes):]
    if rng.random() < 0.3:
        bgr = cv2.GaussianBlur(bgr, (3, 3), rng.uniform(0.4, 0.9))
    return add_noise(bgr, rng, rng.uniform(2.0, 6.0)), boxes, texts, blocks, labels


def make_documents(n: int, seed: int) -> list[DocumentSample]:
    """``n`` 600x848 pages with a title (on 60% of them) and paragraphs of 2-7 lines."""
    check_size(n, seed)
    samples = []
    for index in range(n):
        image, boxes, texts, blocks, labels = render_document(sample_rng(seed, "documents", index))
        samples.append(DocumentSample(image=image, boxes=boxes, texts=texts, blocks=blocks,
                                      block_labels=labels, seed=seed, index=index))
    return samples
