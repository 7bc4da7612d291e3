"""Container-side panels: corrugated painted steel with an ISO 6346 code, as a gate camera
sees it. Truth: the 11-character code and a box around each painted line."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edgedeploy.datasets._common import (add_noise, check_size, rect_box, rotate_small,
                                         sample_rng)
from edgedeploy.datasets.fonts import STENCIL_FACES, find_fonts, load_font
from edgedeploy.datasets.iso6346 import random_code
from edgedeploy.datasets.samples import ContainerSample

PANEL_SIZE = (640, 480)  # width, height
# Paint colours, BGR: red, maroon, blue, dark blue, green, grey, orange, white.
PAINTS = np.array([(40, 40, 170), (40, 30, 110), (150, 80, 30), (90, 45, 20), (60, 120, 40),
                   (130, 130, 125), (30, 110, 220), (225, 225, 220)], dtype=np.float32)
PAD_PX = 3
MAX_TILT_DEG = 3.0


def _steel(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Corrugated, lit, dirty steel as float32 BGR (height, width, 3), and its base paint."""
    paint = np.clip(PAINTS[rng.integers(len(PAINTS))] + rng.uniform(-15, 15, 3), 0, 255)
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    # Trapezoidal ribs: a clipped sine, brighter on the faces that meet the light.
    period, phase = rng.uniform(28, 64), rng.uniform(0, 64)
    ribs = np.clip(1.8 * np.sin(2 * np.pi * (x + phase) / period), -1, 1)
    shade = 1 + rng.uniform(0.06, 0.18) * ribs
    # Light falling off across the panel in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((x - width / 2) * np.cos(angle) + (y - height / 2) * np.sin(angle)) / width
    shade = shade * (1 + rng.uniform(0.1, 0.5) * ramp)
    # Dirt and rust streaks: low-frequency noise stretched down the panel.
    dirt = cv2.resize(rng.random((6, 32), dtype=np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    shade = shade * (1 - rng.uniform(0.05, 0.3) * np.clip(dirt, 0, 1))
    steel = paint * shade[:, :, None]
    if rng.random() < 0.5:  # the top rail, darker and flat
        steel[: int(rng.integers(10, 40))] *= 0.7
    return steel, paint


def _paint_code(rng: np.random.Generator, code: str, width: int, height: int
                ) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """The code's lettering as a float32 coverage mask in 0..1, with line boxes and strings."""
    owner, serial, check = code[:4], code[4:10], code[10]
    two_lines = rng.random() < 0.4
    rows = [[owner], [serial, check]] if two_lines else [[owner, serial, check]]
    fonts = find_fonts(STENCIL_FACES)
    path = fonts[int(rng.integers(len(fonts)))]
    size_px = int(rng.integers(40, 72))
    font = load_font(path, size_px)
    gap = size_px * rng.uniform(0.35, 0.8)
    while size_px > 20 and max(sum(font.getlength(g) for g in row) + gap * (len(row) - 1)
                               for row in rows) > width * 0.85:
        size_px -= 4
        font, gap = load_font(path, size_px), gap * (size_px / (size_px + 4))
    boxed = rng.random() < 0.7  # the check digit framed, as most owners paint it
    frame = max(2, size_px // 14)
    row_pitch = size_px * rng.uniform(1.25, 1.5)
    block_w = max(sum(font.getlength(g) for g in row) + gap * (len(row) - 1) for row in rows)
    block_h = row_pitch * len(rows)
    x0 = rng.uniform(0.06 * width, width * 0.94 - block_w)
    y0 = rng.uniform(0.08 * height, max(0.08 * height + 1, height * 0.75 - block_h))

    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    boxes, texts = [], []
    for r, row in enumerate(rows):
        x, y = x0, y0 + r * row_pitch
        bounds = []
        for group in row:
            draw.text((x, y), group, font=font, fill=255, anchor="la")
            box = draw.textbbox((x, y), group, font=font, anchor="la")
            if boxed and group is check:
                m = size_px * 0.15
                box = (box[0] - m, box[1] - m, box[2] + m, box[3] + m)
                draw.rectangle(box, outline=255, width=frame)
            bounds.append(box)
            x += font.getlength(group) + gap
        x1, y1 = min(b[0] for b in bounds), min(b[1] for b in bounds)
        x2, y2 = max(b[2] for b in bounds), max(b[3] for b in bounds)
        boxes.append(rect_box(x1 - PAD_PX, y1 - PAD_PX, x2 + PAD_PX, y2 + PAD_PX))
        texts.append(" ".join(row))
    return np.asarray(mask, dtype=np.float32) / 255, boxes, texts


def render_panel(rng: np.random.Generator, size: tuple[int, int] = PANEL_SIZE
                 ) -> tuple[np.ndarray, str, list[np.ndarray], list[str]]:
    """One panel: (BGR image, code, boxes of the painted lines, their strings)."""
    width, height = size
    steel, paint = _steel(rng, width, height)
    code = random_code(rng)
    coverage, boxes, texts = _paint_code(rng, code, width, height)
    # Light paint on dark steel, dark paint on light steel; worn in places.
    dark = float(paint @ np.array([0.114, 0.587, 0.299], dtype=np.float32)) > 150
    colour = rng.uniform(15, 45, 3) if dark else rng.uniform(220, 250, 3)
    wear = cv2.resize(rng.random((12, 16), dtype=np.float32), (width, height))
    alpha = coverage * (rng.uniform(0.85, 1.0) - 0.2 * wear)
    image = steel * (1 - alpha[:, :, None]) + colour.astype(np.float32) * alpha[:, :, None]
    image = np.clip(image, 0, 255).astype(np.uint8)
    image, boxes = rotate_small(image, rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG), boxes)
    if rng.random() < 0.4:
        image = cv2.GaussianBlur(image, (5, 5), rng.uniform(0.5, 1.3))
    return add_noise(image, rng, rng.uniform(3.0, 8.0)), code, boxes, texts


def make_container_panels(n: int, seed: int) -> list[ContainerSample]:
    """``n`` 640x480 panels, each with one valid ISO 6346 code painted on 1 or 2 lines."""
    check_size(n, seed)
    samples = []
    for index in range(n):
        image, code, boxes, texts = render_panel(sample_rng(seed, "containers", index))
        samples.append(ContainerSample(image=image, code=code, boxes=boxes, texts=texts,
                                       seed=seed, index=index))
    return samples
