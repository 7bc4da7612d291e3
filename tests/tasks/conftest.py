"""Rendered test images with known text and line boxes, and sessions on the real zoo models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

PAGE_LINES = (
    "Invoice 2026-0417 for order 88213",
    "Ship to: 12 Harbour Road, Dock 4",
    "Container MSKU 305438 7 (40ft)",
    "Gross weight 24500 kg, tare 3750 kg",
    "Total due: 1,280.50 EUR by 30 June",
)


@dataclass
class Rendered:
    image: np.ndarray  # HxWx3 uint8 BGR
    lines: list[str]
    boxes: np.ndarray  # (N,4) x1,y1,x2,y2 of each line's ink


def _render_lines(lines, *, size=(640, 640), font_size=26, origin=(40, 40), spacing=2.2, font=FONT) -> Rendered:
    """Black text on white, one line per entry, ``spacing`` x font size apart."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    f = ImageFont.truetype(font, font_size)
    boxes = []
    x, y = origin
    for line in lines:
        draw.text((x, y), line, fill="black", font=f)
        boxes.append(draw.textbbox((x, y), line, font=f))
        y += int(font_size * spacing)
    return Rendered(np.ascontiguousarray(np.asarray(img)[:, :, ::-1]), list(lines), np.array(boxes, np.float32))


def _render_word(text: str, *, font_size=32, pad=12) -> np.ndarray:
    """A tight crop of one rendered line, as the detector would cut it out."""
    f = ImageFont.truetype(FONT, font_size)
    x0, y0, x1, y1 = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=f)
    img = Image.new("RGB", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), "white")
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, fill="black", font=f)
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])


@pytest.fixture(scope="session")
def render_lines():
    """render_lines(lines, *, size, font_size, origin, spacing) -> Rendered page."""
    return _render_lines


@pytest.fixture(scope="session")
def render_word():
    """render_word(text, *, font_size, pad) -> tight BGR crop of one line."""
    return _render_word


@pytest.fixture(scope="session")
def page_lines() -> tuple[str, ...]:
    return PAGE_LINES


@pytest.fixture(scope="session")
def page() -> Rendered:
    """A 640x640 page with the five PAGE_LINES."""
    return _render_lines(PAGE_LINES)


@pytest.fixture(scope="session")
def load():
    """zoo name → (ZooModel, session with 2 threads) on ONNX Runtime."""
    from edgedeploy import engines, zoo
    from edgedeploy.engines import EngineOptions

    cache = {}

    def _load(name: str):
        if name not in cache:
            model = zoo.fetch(name)
            cache[name] = (model, engines.load(model.path, engine="onnxruntime", options=EngineOptions(threads=2)))
        return cache[name]

    return _load
