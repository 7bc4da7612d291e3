"""Document layout detection with PicoDet (GFL head, anchor-free).

The page is stretched to the model's input (1x3x800x608 for the CDLA model). For each stride
(8, 16, 32, 64) the model gives per-cell class scores (1, cells, classes) and, per side
(left, top, right, bottom), a distribution over ``reg_max + 1`` distances (1, cells,
4 * (reg_max + 1)); the expected distance times the stride, measured from the cell centre,
gives the box. Candidates above ``score_thresh`` go through per-class NMS.
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True, kw_only=True)
class LayoutOptions:
    """input_hw: model input (height, width) in px, when the model's own shape is dynamic;
    thresholds as rapid_layout's defaults; keep_per_class: boxes kept per class after NMS."""

    input_hw: tuple[int, int] = (800, 608)
    strides: tuple[int, ...] = (8, 16, 32, 64)
    score_thresh: float = 0.5
    iou_thresh: float = 0.5
    keep_per_class: int = 100


@dataclass
class LayoutResult:
    """boxes: (N,4) float32 x1,y1,x2,y2 in original pixels; scores (N,); class_ids (N,); labels[i]
    the class name of box i. Sorted by score, highest first."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str]
    timings: Timings = field(default_factory=Timings)

    def __len__(self) -> int:
        return len(self.boxes)


class LayoutDetector:
    """``LayoutDetector(session, labels=entry.labels)(page_bgr) -> LayoutResult``."""

    task = "layout"
    expects = ("k score maps (1 x cells x classes) and k box maps (1 x cells x 4*(reg_max+1)), "
               "one pair per stride")

    def __init__(self, session: SessionLike, *, labels: Sequence[str], preprocess: Preprocess = _IMAGENET,
                 options: LayoutOptions | None = None):
        self.session = session
        self.input_name = single_input(session)
        self.labels = list(labels)
        o = self.options = options or LayoutOptions()
        h, w = session.inputs[0].shape[2:]
        self.input_hw = (h or o.input_hw[0], w or o.input_hw[1])
        self.normalize = Normalizer(preprocess)
        self._centres, self._strides = self._grid()

    @classmethod
    def from_entry(cls, session: SessionLike, entry: ZooEntry, **options) -> LayoutDetector:
        if not entry.labels:
            raise UserError(f"zoo entry {entry.name} has no class labels; a layout model needs them")
        return cls(session, labels=entry.labels, preprocess=entry.preprocess,
                   options=make_options(LayoutOptions, options))

    @staticmethod
    def check_outputs(outputs) -> bool:
        if not outputs or len(outputs) % 2 or any(len(o.shape) != 3 for o in outputs):
            return False
        k = len(outputs) // 2
        return all(o.shape[-1] is None or o.shape[-1] % 4 == 0 for o in outputs[k:])

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres (cells, 2) x,y and each cell's stride, all levels concatenated."""
        h, w = self.input_hw
        centres, strides = [], []
        for s in self.options.strides:
            gh, gw = math.ceil(h / s), math.ceil(w / s)
            yy, xx = np.mgrid[0:gh, 0:gw]
            centres.append(np.stack([xx.ravel(), yy.ravel()], 1) * s + s / 2)
            strides.append(np.full(gh * gw, s))
        return np.concatenate(centres).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def preprocess(self, img: np.ndarray) -> np.ndarray:
        h, w = self.input_hw
        return self.normalize(cv2.resize(img, (w, h)))

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run({self.input_name: tensor}).values())

    def _split(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Outputs → (scores (cells, classes), distributions (cells, 4, bins)), levels by stride."""
        k = len(outs) // 2
        scores, dists = outs[:k], outs[k:]
        # Order each half by cell count, most cells (stride 8) first, as the grid is.
        scores = sorted(scores, key=lambda a: -a.shape[1])
        dists = sorted(dists, key=lambda a: -a.shape[1])
        cells = [a.shape[1] for a in scores]
        if cells != [a.shape[1] for a in dists] or sum(cells) != len(self._centres) \
                or any(a.shape[-1] != len(self.labels) for a in scores):
            raise UserError(
                f"layout model outputs {[a.shape for a in outs]} do not fit an input of {self.input_hw} with "
                f"strides {self.options.strides} and {len(self.labels)} classes; task 'layout' expects {self.expects}"
            )
        bins = dists[0].shape[-1] // 4
        return (np.concatenate([a[0] for a in scores]),
                np.concatenate([a[0] for a in dists]).reshape(-1, 4, bins))

    def postprocess(self, outs: list[np.ndarray], image_hw: tuple[int, int]):
        """Raw outputs → (boxes (N,4) x1y1x2y2 in original pixels, scores (N,), class ids (N,))."""
        o = self.options
        scores, dists = self._split(outs)
        cell, cls = np.nonzero(scores > o.score_thresh)
        if len(cell) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        conf = scores[cell, cls]
        # Distribution focal loss: expected bin index per side, only for the candidate cells.
        d = dists[cell]
        d = np.exp(d - d.max(axis=2, keepdims=True))
        dist = (d @ np.arange(d.shape[2], dtype=np.float32)) / d.sum(axis=2)  # (n, 4)
        dist *= self._strides[cell, None]
        c = self._centres[cell]
        boxes = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
        keep = np.asarray(cv2.dnn.NMSBoxesBatched(
            np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).astype(np.float64),
            conf.astype(np.float32), cls.astype(np.int32), o.score_thresh, o.iou_thresh), np.int64).reshape(-1)
        keep = keep[np.argsort(-conf[keep], kind="stable")]
        keep = keep[_rank_within(cls[keep]) < o.keep_per_class]
        ih, iw = image_hw
        h, w = self.input_hw
        out = boxes[keep] * np.array([iw / w, ih / h, iw / w, ih / h], np.float32)
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, iw)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, ih)
        return out.astype(np.float32), conf[keep].astype(np.float32), cls[keep].astype(np.int64)

    def __call__(self, img: np.ndarray) -> LayoutResult:
        img = as_bgr(img)
        sw = Stopwatch()
        tensor = self.preprocess(img)
        t_pre = sw.lap()
        outs = self.infer(tensor)
        t_model = sw.lap()
        boxes, scores, ids = self.postprocess(outs, img.shape[:2])
        return LayoutResult(boxes, scores, ids, [self.labels[i] for i in ids], Timings(t_pre, t_model, sw.lap()))


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """For each item, how many earlier items share its group (0 for the first of each)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    rank_sorted = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank

