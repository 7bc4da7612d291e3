"""The OCR pipeline: detect text lines, cut each out upright, optionally fix 180° lines, read them."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgedeploy.tasks.cls import TextlineClassifier
from edgedeploy.tasks.common import Stopwatch, Timings, as_bgr
from edgedeploy.tasks.det import TextDetector
from edgedeploy.tasks.rec import TextRecognizer


@dataclass
class OCRLine:
    """box: (4,2) float32 quad (tl, tr, br, bl) in image pixels; text; score: mean character probability."""

    box: np.ndarray
    text: str
    score: float


@dataclass
class OCRResult:
    """Lines in reading order; timings per stage: det, crop, cls (when used), rec (ms)."""

    lines: list[OCRLine]
    timings: dict[str, Timings] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    @property
    def total_ms(self) -> float:
        return sum(t.total_ms for t in self.timings.values())

    def __len__(self) -> int:
        return len(self.lines)


class OCRSystem:
    """``OCRSystem(det, cls, rec)(page_bgr) -> OCRResult``; ``cls`` may be None.

    text_score: lines read with a lower mean probability are dropped, as are empty ones.
    min_height / max_aspect: a very flat image (a single line) is padded above and below
    before detection, as DB needs some context around text.
    """

    def __init__(self, det: TextDetector, cls: TextlineClassifier | None, rec: TextRecognizer, *,
                 text_score: float = 0.5, min_height: int = 30, max_aspect: float = 8.0):
        self.det, self.cls, self.rec = det, cls, rec
        self.text_score = text_score
        self.min_height = min_height
        self.max_aspect = max_aspect

    def __call__(self, img: np.ndarray) -> OCRResult:
        img = as_bgr(img)
        padded, top = self._pad(img)
        det = self.det(padded)
        timings = {"det": det.timings}

        sw = Stopwatch()
        crops = [crop_quad(padded, q) for q in det.boxes]
        timings["crop"] = Timings(preprocess_ms=sw.lap())
        if self.cls is not None and crops:
            cls = self.cls(crops)
            sw.lap()
            crops = self.cls.upright(crops, cls)
            cls.timings.postprocess_ms += sw.lap()
            timings["cls"] = cls.timings
        rec = self.rec(crops)
        timings["rec"] = rec.timings

        boxes = det.boxes.copy()
        boxes[..., 1] = np.clip(boxes[..., 1] - top, 0, img.shape[0] - 1)
        lines = [OCRLine(b, t, s) for b, t, s in zip(boxes, rec.texts, rec.scores)
                 if t.strip() and s >= self.text_score]
        return OCRResult(lines, timings)

    def _pad(self, img: np.ndarray) -> tuple[np.ndarray, int]:
        h, w = img.shape[:2]
        if h > self.min_height and w / h <= self.max_aspect:
            return img, 0
        pad = int(abs(max(int(w / self.max_aspect), self.min_height) * 2 - h) / 2)
        return cv2.copyMakeBorder(img, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)), pad


def crop_quad(img: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Warp the quad (tl, tr, br, bl) to an upright rectangle; a crop 1.5x taller than wide is
    turned 90° counter-clockwise, taking it for vertical text."""
    quad = np.asarray(quad, np.float32)
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(quad, dst)
    crop = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if h / w >= 1.5:
        crop = cv2.rotate(crop, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return crop
