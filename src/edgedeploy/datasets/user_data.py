"""What the user's data becomes: :class:`UserData` (model-ready samples, labels, boxes) and the one
image reader every user-data format goes through (:mod:`edgedeploy.datasets.user`, ``user_boxes``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


@dataclass
class UserData:
    """Model-ready samples (each 1 x ... float32), optional class labels, and what was read."""

    tensors: list[np.ndarray]
    source: str
    labels: list[int] | None = None
    classes: tuple[str, ...] = ()
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None  # detection: per sample K x 5 (class, x1, y1, x2, y2 in input pixels)

    def __len__(self) -> int:
        return len(self.tensors)

    def take(self, idx) -> UserData:
        return replace(self, tensors=[self.tensors[i] for i in idx],
                       labels=None if self.labels is None else [self.labels[i] for i in idx],
                       boxes=None if self.boxes is None else [self.boxes[i] for i in idx])


def read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 image (OpenCV's convention), via OpenCV then Pillow; None if neither reads it."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is not None:
        return img
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])
    except Exception:  # Pillow raises many types for files it does not understand
        return None
