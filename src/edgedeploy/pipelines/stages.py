"""Small generic stages: :class:`ResizeStage` (crop a region, scale) and :class:`RuleStage`
(keep, drop or tag events by a field's value)."""

from __future__ import annotations

import re
from typing import Any, Callable

import cv2
import numpy as np

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.pipelines.stage import Frame, Stage

class ResizeStage(Stage):
    """Preprocess: crop a region of interest (fractions of the frame) and/or scale the frame.

    The full-resolution frame stays in ``frame.full`` with the crop's offset and the scale in
    ``frame.roi = (x0, y0, scale)``, so later stages can map boxes back."""

    name = "resize"

    def __init__(self, *, roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0), scale: float = 1.0,
                 name: str = "resize"):
        x0, y0, x1, y1 = roi
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise UserError(f"roi {roi} must be (x0, y0, x1, y1) fractions of the frame with x0<x1, y0<y1")
        if not 0 < scale <= 4:
            raise UserError(f"scale {scale} must be in (0, 4]")
        self.roi, self.scale, self.name = roi, scale, name

    def process(self, frame: Frame) -> Frame:
        h, w = frame.image.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in (self.roi[0] * w, self.roi[1] * h, self.roi[2] * w, self.roi[3] * h))
        if frame.full is None:
            frame.full = frame.image
        img = frame.image[y0:y1, x0:x1]
        if self.scale != 1.0:
            img = cv2.resize(img, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        frame.roi = (x0, y0, self.scale)
        frame.image = np.ascontiguousarray(img)
        return frame


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a is not None and a >= b, ">": lambda a, b: a is not None and a > b,
    "<=": lambda a, b: a is not None and a <= b, "<": lambda a, b: a is not None and a < b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "matches": lambda a, b: a is not None and re.search(str(b), str(a)) is not None,
}


class RuleStage(Stage):
    """A rule on events: keep (``action="keep"``) or drop (``"drop"``) the events whose
    ``field`` compares true with ``value``, or ``"tag"`` them (``event["rules"]`` lists the
    rules that matched). E.g. keep events with ``confidence >= 0.6``."""

    def __init__(self, *, field: str, op: str, value: Any, action: str = "keep", name: str = "rule"):
        if op not in _OPS:
            raise UserError(f"rule op {op!r} is not known{did_you_mean(op, _OPS)}; use one of {', '.join(_OPS)}")
        if action not in ("keep", "drop", "tag"):
            raise UserError(f"rule action {action!r} is not known; use keep, drop or tag")
        self.field, self.op, self.value, self.action, self.name = field, op, value, action, name
        self.filtered = 0

    def _apply(self, frame: Frame) -> Frame:
        kept = []
        for event in frame.events:
            hit = _OPS[self.op](event.get(self.field), self.value)
            if self.action == "tag":
                if hit:
                    event.setdefault("rules", []).append(self.name)
                kept.append(event)
            elif hit == (self.action == "keep"):
                kept.append(event)
        self.filtered += len(frame.events) - len(kept)
        frame.events = kept
        return frame

    def process(self, frame: Frame) -> Frame:
        return self._apply(frame)

    def finish(self, end: Frame) -> Frame:
        return self._apply(end)
