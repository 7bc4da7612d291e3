"""Text-line direction (0° or 180°) with the PP-OCR line classifier.

Each crop is resized to height 48 keeping its aspect (at most 192 wide), padded to 48x192,
and classified; lines read as "180" with enough confidence are turned upright before
recognition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.tasks.common import (
    Normalizer, SessionLike, Stopwatch, Timings, as_bgr, batches, make_options, single_input,
)
from edgedeploy.zoo.registry import Preprocess, ZooEntry

_HALF = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True, kw_only=True)
class ClsOptions:
    """Input size in px, lines per model run, and the score above which "180" lines are rotated."""

    height: int = 48
    width: int = 192
    batch_size: int = 6
    rotate_thresh: float = 0.9


@dataclass
class ClsResult:
    """labels[i] ("0" or "180") and scores[i] (its probability) for line i."""

    labels: list[str]
    scores: list[float]
    timings: Timings = field(default_factory=Timings)

    def __len__(self) -> int:
        return len(self.labels)


class TextlineClassifier:
    """``cls([crop, ...]) -> ClsResult``; :meth:`upright` turns confident "180" lines around."""

    task = "cls"
    expects = "one output of rank 2 (N x classes)"

    def __init__(self, session: SessionLike, *, labels: Sequence[str] = ("0", "180"), preprocess: Preprocess = _HALF,
                 options: ClsOptions | None = None):
        self.session = session
        self.input_name = single_input(session)
        self.labels = list(labels)
        self.options = options or ClsOptions()
        self.normalize = Normalizer(preprocess)
        classes = session.outputs[0].shape[-1] if session.outputs else None
        if classes is not None and classes != len(self.labels):
            raise UserError(f"the model outputs {classes} classes but {len(self.labels)} labels were given "
                            f"({', '.join(self.labels)})")

    @classmethod
    def from_entry(cls, session: SessionLike, entry: ZooEntry, **options) -> TextlineClassifier:
        return cls(session, labels=entry.labels or ("0", "180"), preprocess=entry.preprocess,
                   options=make_options(ClsOptions, options))

    @staticmethod
    def check_outputs(outputs) -> bool:
        return len(outputs) == 1 and len(outputs[0].shape) == 2

    def preprocess(self, crops: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Crops → [(indices, Bx3x48x192 float32)], in order of aspect ratio as the reference does."""
        o = self.options
        ratios = np.array([c.shape[1] / max(c.shape[0], 1) for c in crops])
        out = []
        for idx in batches(np.argsort(ratios, kind="stable"), o.batch_size):
            batch = np.zeros((len(idx), 3, o.height, o.width), np.float32)
            for b, i in enumerate(idx):
                w = min(o.width, max(1, math.ceil(o.height * ratios[i])))
                self.normalize.into(cv2.resize(crops[i], (w, o.height)), batch[b])
            out.append((idx, batch))
        return out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return next(iter(self.session.run({self.input_name: batch}).values()))

    def postprocess(self, probs: np.ndarray) -> tuple[list[str], list[float]]:
        best = probs.argmax(axis=1)
        return [self.labels[i] for i in best], probs[np.arange(len(best)), best].astype(float).tolist()

    def __call__(self, crops: np.ndarray | Sequence[np.ndarray]) -> ClsResult:
        if isinstance(crops, np.ndarray) and crops.ndim in (2, 3) and crops.dtype == np.uint8:
            crops = [crops]
        crops = [as_bgr(c) for c in crops]
        labels, scores = [""] * len(crops), [0.0] * len(crops)
        t = Timings()
        sw = Stopwatch()
        prepared = self.preprocess(crops) if crops else []
        t.preprocess_ms += sw.lap()
        for idx, batch in prepared:
            probs = self.infer(batch)
            t.model_ms += sw.lap()
            for i, label, score in zip(idx, *self.postprocess(probs)):
                labels[i], scores[i] = label, score
            t.postprocess_ms += sw.lap()
        return ClsResult(labels, scores, t)

    def upright(self, crops: Sequence[np.ndarray], result: ClsResult) -> list[np.ndarray]:
        """``crops`` with those classified "180" above ``rotate_thresh`` rotated by 180°."""
        return rotate_upside_down(crops, result, self.options.rotate_thresh)


def rotate_upside_down(crops: Sequence[np.ndarray], result: ClsResult, thresh: float = 0.9) -> list[np.ndarray]:
    """Rotate by 180° every crop whose label is "180" with a score above ``thresh``; keep the others."""
    return [cv2.rotate(c, cv2.ROTATE_180) if lab == "180" and s > thresh else c
            for c, lab, s in zip(crops, result.labels, result.scores)]
