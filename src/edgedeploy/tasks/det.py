"""Text detection with a DB (Differentiable Binarization) model such as PP-OCR det.

The model maps a 1x3xHxW image (H, W multiples of 32) to a 1x1xHxW text-probability map;
post-processing turns the map into quadrilaterals in the original image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.tasks.common import (
    Normalizer, SessionLike, Stopwatch, Timings, as_bgr, make_options, single_input,
)
from edgedeploy.zoo.registry import Preprocess, ZooEntry

_LINE_Y_GAP = 10  # px: boxes whose top-left y differ by less are on one line (rapidocr's rule)


@dataclass(frozen=True, kw_only=True)
class DetOptions:
    """Resizing and DB post-processing settings (defaults: rapidocr's for PP-OCRv6).

    limit_type "min": scale up so the short side is at least ``limit_side_len``;
    "max": scale down so the long side is at most ``limit_side_len``. Either way the long
    side is then capped at ``max_side_len`` and both sides rounded to a multiple of 32.
    """

    limit_side_len: int = 736
    limit_type: str = "min"
    max_side_len: int = 2000
    thresh: float = 0.3  # probability → text pixel
    box_thresh: float = 0.5  # mean probability inside a box to keep it
    unclip_ratio: float = 1.6  # DB shrinks text by this much during training; grow it back
    use_dilation: bool = True  # 2x2 dilation of the binary map before contours
    max_candidates: int = 1000
    min_size: float = 3.0  # px in the map: shorter boxes are dropped

    def __post_init__(self):
        if self.limit_type not in ("min", "max"):
            raise UserError(f"limit_type {self.limit_type!r} is not known; expected 'min' or 'max'")
        if self.limit_side_len < 32 or self.max_side_len < 32:
            raise UserError(f"limit_side_len/max_side_len must be at least 32 px, got "
                            f"{self.limit_side_len}/{self.max_side_len}")


@dataclass
class DetResult:
    """boxes: (N,4,2) float32 quads (tl, tr, br, bl) in original pixels, reading order; scores: (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    timings: Timings = field(default_factory=Timings)

    def __len__(self) -> int:
        return len(self.boxes)


class TextDetector:
    """DB text detector: ``TextDetector(session, preprocess=entry.preprocess)(img_bgr) -> DetResult``."""

    task = "det"
    expects = "one output of rank 4 with 1 channel (Nx1xHxW probability map)"

    def __init__(self, session: SessionLike, *, preprocess: Preprocess, options: DetOptions | None = None):
        self.session = session
        self.input_name = single_input(session)
        self.options = options or DetOptions()
        self.normalize = Normalizer(preprocess)

    @classmethod
    def from_entry(cls, session: SessionLike, entry: ZooEntry, **options) -> TextDetector:
        return cls(session, preprocess=entry.preprocess, options=make_options(DetOptions, options))

    @staticmethod
    def check_outputs(outputs) -> bool:
        return len(outputs) == 1 and len(outputs[0].shape) == 4 and outputs[0].shape[1] in (None, 1)

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """The (height, width) the model sees for an h x w image."""
        o = self.options
        if o.limit_type == "min":
            ratio = max(1.0, o.limit_side_len / min(h, w))
        else:
            ratio = min(1.0, o.limit_side_len / max(h, w))
        ratio = min(ratio, o.max_side_len / (max(h, w) * 1.0))
        return (max(32, int(round(int(h * ratio) / 32)) * 32), max(32, int(round(int(w * ratio) / 32)) * 32))

    def preprocess(self, img: np.ndarray) -> np.ndarray:
        """BGR uint8 image → 1x3xH'xW' float32, H' and W' multiples of 32."""
        h, w = img.shape[:2]
        rh, rw = self.input_size(h, w)
        resized = img if (rh, rw) == (h, w) else cv2.resize(img, (rw, rh))
        return self.normalize(resized)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model; returns the HxW probability map."""
        out = next(iter(self.session.run({self.input_name: tensor}).values()))
        return out[0, 0]

    def postprocess(self, prob: np.ndarray, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Probability map → (boxes (N,4,2) float32 in original pixels, scores (N,) float32)."""
        return db_postprocess(prob, image_hw, self.options)

    def __call__(self, img: np.ndarray) -> DetResult:
        img = as_bgr(img)
        sw = Stopwatch()
        tensor = self.preprocess(img)
        t_pre = sw.lap()
        prob = self.infer(tensor)
        t_model = sw.lap()
        boxes, scores = self.postprocess(prob, img.shape[:2])
        return DetResult(boxes, scores, Timings(t_pre, t_model, sw.lap()))


def db_postprocess(prob: np.ndarray, image_hw: tuple[int, int],
                   options: DetOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """DB post-processing of one HxW probability map, for an image of ``image_hw`` pixels.

    Binarise at ``thresh`` (dilated 2x2), take each connected region's minimum-area
    rectangle, score it by the mean probability inside, grow it by
    ``area * unclip_ratio / perimeter`` on every side, and scale it to the image.
    Returns quads (tl, tr, br, bl) sorted top-to-bottom then left-to-right, and scores.
    """
    o = options or DetOptions()
    prob = np.asarray(prob, np.float32)
    mh, mw = prob.shape
    bitmap = (prob > o.thresh).astype(np.uint8)
    if o.use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)

    rects, scores = [], []
    for contour in contours[: o.max_candidates]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < o.min_size:
            continue
        score = _mean_inside(prob, cv2.boxPoints(((cx, cy), (rw, rh), angle)))
        if score < o.box_thresh:
            continue
        # Offsetting a rectangle by d (round joins) and taking the min-area rectangle of the
        # result gives the same rectangle grown by d on each side: no polygon clipping needed.
        d = rw * rh * o.unclip_ratio / (2.0 * (rw + rh))
        if min(rw, rh) + 2 * d < o.min_size + 2:
            continue
        rects.append(((cx, cy), (rw + 2 * d, rh + 2 * d), angle))
        scores.append(score)
    if not rects:
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)

    quads = np.stack([cv2.boxPoints(r) for r in rects]).astype(np.float32)  # (N,4,2)
    ih, iw = image_hw
    quads *= np.array([iw / mw, ih / mh], np.float32)
    quads = order_quads(quads)
    quads[..., 0] = np.clip(quads[..., 0], 0, iw - 1)
    quads[..., 1] = np.clip(quads[..., 1], 0, ih - 1)
    scores = np.asarray(scores, np.float32)
    width = np.linalg.norm(quads[:, 0] - quads[:, 1], axis=1)
    height = np.linalg.norm(quads[:, 0] - quads[:, 3], axis=1)
    keep = (width > 3) & (height > 3)
    quads, scores = quads[keep], scores[keep]
    order = reading_order(quads)
    return quads[order], scores[order]


def _mean_inside(prob: np.ndarray, pts: np.ndarray) -> float:
    """Mean of ``prob`` over the polygon ``pts`` (clipped to the map)."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(pts - [x0, y0]).astype(np.int32)], 1)
    return cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0]


def order_quads(quads: np.ndarray) -> np.ndarray:
    """Reorder each quad's corners to (top-left, top-right, bottom-right, bottom-left).

    The two left-most corners (by x) are the left side, the upper of them top-left.
    """
    idx = np.argsort(quads[..., 0], axis=1, kind="stable")
    pts = np.take_along_axis(quads, idx[..., None], axis=1)
    left, right = pts[:, :2], pts[:, 2:]
    lo = np.argsort(left[..., 1], axis=1, kind="stable")
    ro = np.argsort(right[..., 1], axis=1, kind="stable")
    left = np.take_along_axis(left, lo[..., None], axis=1)
    right = np.take_along_axis(right, ro[..., None], axis=1)
    return np.stack([left[:, 0], right[:, 0], right[:, 1], left[:, 1]], axis=1)


def reading_order(quads: np.ndarray) -> np.ndarray:
    """Indices that sort quads top-to-bottom, then left-to-right within a line.

    Quads are sorted by top-left y; a gap of ``_LINE_Y_GAP`` px or more starts a new line.
    """
    if len(quads) == 0:
        return np.zeros((0,), np.intp)
    by_y = np.argsort(quads[:, 0, 1], kind="stable")
    line = np.concatenate([[0], np.cumsum(np.diff(quads[by_y, 0, 1]) >= _LINE_Y_GAP)])
    return by_y[np.lexsort((quads[by_y, 0, 0], line))]
