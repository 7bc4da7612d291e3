"""An image (OpenCV BGR, uint8) → the model's input tensor, exactly as its card says."""

from __future__ import annotations

import numpy as np

from edgedeploy.cards.schema import Color, Interpolation, Layout, ModelCard, Resize


def _flag(card: ModelCard) -> int:
    import cv2

    return {Interpolation.NEAREST: cv2.INTER_NEAREST, Interpolation.LINEAR: cv2.INTER_LINEAR,
            Interpolation.AREA: cv2.INTER_AREA, Interpolation.CUBIC: cv2.INTER_CUBIC,
            Interpolation.LANCZOS: cv2.INTER_LANCZOS4}[card.interpolation]


def resize(img: np.ndarray, card: ModelCard) -> np.ndarray:
    """``img`` brought to ``card.size`` (height, width) by the card's resize mode."""
    import cv2

    h, w = card.size
    ih, iw = img.shape[:2]
    flag = _flag(card)
    if card.resize is Resize.STRETCH:
        return cv2.resize(img, (w, h), interpolation=flag)
    if card.resize is Resize.LETTERBOX:
        r = min(h / ih, w / iw)
        nh, nw = max(1, round(ih * r)), max(1, round(iw * r))
        out = np.full((h, w, *img.shape[2:]), card.pad_value, dtype=img.dtype)
        top, left = (h - nh) // 2, (w - nw) // 2
        out[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=flag)
        return out
    # crop: the short side fits (or becomes resize_short), the centre is kept
    r = max(h / ih, w / iw) if card.resize_short is None else max(card.resize_short / min(ih, iw), h / ih, w / iw)
    nh, nw = max(h, round(ih * r)), max(w, round(iw * r))
    big = cv2.resize(img, (nw, nh), interpolation=flag)
    top, left = (nh - h) // 2, (nw - w) // 2
    return big[top:top + h, left:left + w]


def map_boxes(boxes: np.ndarray, image_hw: tuple[int, int], card: ModelCard) -> np.ndarray:
    """Boxes ``K x 4`` (x1, y1, x2, y2 in the original image's pixels) → the model input's pixels,
    through the same geometry as :func:`resize` (stretch, letterbox offsets, centre crop; clipped)."""
    h, w = card.size
    ih, iw = image_hw
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    if card.resize is Resize.STRETCH:
        sx, sy, left, top = w / iw, h / ih, 0.0, 0.0
    elif card.resize is Resize.LETTERBOX:
        r = min(h / ih, w / iw)
        nh, nw = max(1, round(ih * r)), max(1, round(iw * r))
        sx, sy, left, top = nw / iw, nh / ih, (w - nw) // 2, (h - nh) // 2
    else:
        r = max(h / ih, w / iw) if card.resize_short is None else max(card.resize_short / min(ih, iw), h / ih, w / iw)
        nh, nw = max(h, round(ih * r)), max(w, round(iw * r))
        sx, sy, left, top = nw / iw, nh / ih, -((nw - w) // 2), -((nh - h) // 2)
    b[:, [0, 2]] = (b[:, [0, 2]] * sx + left).clip(0, w)
    b[:, [1, 3]] = (b[:, [1, 3]] * sy + top).clip(0, h)
    return b


def to_tensor(img: np.ndarray, card: ModelCard) -> np.ndarray:
    """1 x C x H x W (or 1 x H x W x C) float32 from a BGR (or grayscale) uint8 image."""
    import cv2

    if img.ndim == 2:
        img = img[:, :, None]
    if card.color is Color.GRAY:
        img = img if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif card.color is Color.RGB:
        img = img[:, :, ::-1]
    x = resize(np.ascontiguousarray(img), card)
    if x.ndim == 2:
        x = x[:, :, None]
    x = (x.astype(np.float32) * card.scale - np.asarray(card.mean, np.float32)) / np.asarray(card.std, np.float32)
    if card.layout is Layout.NCHW:
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)
