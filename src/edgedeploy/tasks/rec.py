"""Text-line recognition with a CTC model such as PP-OCR rec.

Line crops are resized to height 48 keeping their aspect, padded on the right to a common
width, batched by similar aspect ratio, and the model's (N, T, classes) probabilities are
decoded greedily: best class per step, repeats collapsed, blanks (class 0) dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.tasks.common import (
    Normalizer, SessionLike, Stopwatch, Timings, as_bgr, batches, make_options, onnx_metadata, single_input,
)
from edgedeploy.zoo.registry import Preprocess

_HALF = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True, kw_only=True)
class RecOptions:
    """height: model input height (px); min_width: narrowest batch (PaddleOCR's 320);
    max_width: lines wider than this after resizing are squeezed to it; batch_size: lines per run;
    width_step: each batch's width is rounded up to a multiple of this (px), so an engine that
    prepares itself per input shape (OpenVINO) sees few distinct shapes (1: no rounding)."""

    height: int = 48
    min_width: int = 320
    max_width: int = 2048
    batch_size: int = 6
    width_step: int = 1

    def __post_init__(self):
        if self.batch_size < 1 or self.width_step < 1 or self.height < 1:
            raise UserError(f"batch_size, width_step and height must be >= 1, got "
                            f"{self.batch_size}, {self.width_step}, {self.height}")


@dataclass
class RecResult:
    """texts[i], scores[i] (mean probability of the kept characters; 0 when empty) for line i."""

    texts: list[str]
    scores: list[float]
    timings: Timings = field(default_factory=Timings)

    def __len__(self) -> int:
        return len(self.texts)


class CTCDecoder:
    """Greedy CTC decoding over ``characters`` (index 0 is the blank)."""

    def __init__(self, characters: Sequence[str]):
        self.characters = np.asarray(list(characters), dtype=object)

    @classmethod
    def from_dictionary(cls, lines: Sequence[str]) -> CTCDecoder:
        """PaddleOCR's convention: blank first, the dictionary, then a space as the last class."""
        return cls(["", *lines, " "])

    def __len__(self) -> int:
        return len(self.characters)

    def __call__(self, probs: np.ndarray) -> tuple[list[str], list[float]]:
        """(N, T, C) per-step class probabilities → texts and mean confidences."""
        if probs.shape[-1] != len(self.characters):
            raise UserError(f"the model outputs {probs.shape[-1]} classes but the dictionary has "
                            f"{len(self.characters)} (blank and space included); use the model's own dictionary")
        idx = probs.argmax(axis=2)
        conf = np.take_along_axis(probs, idx[..., None], axis=2)[..., 0]
        keep = idx != 0
        keep[:, 1:] &= idx[:, 1:] != idx[:, :-1]
        chars = self.characters[idx]
        texts = ["".join(row[k]) for row, k in zip(chars, keep)]
        n = keep.sum(axis=1)
        scores = np.where(n > 0, (conf * keep).sum(axis=1) / np.maximum(n, 1), 0.0)
        return texts, scores.astype(float).tolist()


class TextRecognizer:
    """CTC text-line recogniser: ``rec([crop, ...]) -> RecResult`` (crops BGR uint8)."""

    task = "rec"
    expects = "one output of rank 3 (N x steps x classes)"

    def __init__(self, session: SessionLike, *, characters: Sequence[str], preprocess: Preprocess = _HALF,
                 options: RecOptions | None = None):
        """characters: the model's dictionary without blank or trailing space (PaddleOCR keys file)."""
        self.session = session
        self.input_name = single_input(session)
        self.options = options or RecOptions()
        self.normalize = Normalizer(preprocess)
        self.decode = CTCDecoder.from_dictionary(characters)
        classes = session.outputs[0].shape[-1] if session.outputs else None
        if classes is not None and classes != len(self.decode):
            raise UserError(f"the model outputs {classes} classes but the dictionary gives {len(self.decode)} "
                            "(with blank and space); pass the dictionary that came with the model")

    @classmethod
    def from_zoo(cls, session: SessionLike, model, **options) -> TextRecognizer:
        """Build from a ZooModel: the dictionary is its ``dict`` file or the ONNX metadata key ``character``."""
        return cls(session, characters=load_dictionary(model.paths), preprocess=model.entry.preprocess,
                   options=make_options(RecOptions, options))

    @staticmethod
    def check_outputs(outputs) -> bool:
        return len(outputs) == 1 and len(outputs[0].shape) == 3

    def padded_width(self, crop: np.ndarray) -> int:
        """The input width ``crop`` is padded to when it is read alone; crops of one padded width
        batch together without changing each other's input."""
        return self._width(crop.shape[1] / max(crop.shape[0], 1))

    def _width(self, ratio: float) -> int:
        o = self.options
        width = int(o.height * max(o.min_width / o.height, ratio))
        return min(-(-width // o.width_step) * o.width_step, o.max_width)

    def preprocess(self, crops: Sequence[np.ndarray], batch_size: int | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Crops → [(indices, Bx3xHxW float32 batch)], batched by increasing aspect ratio
        (``batch_size`` lines a batch; default the options')."""
        o = self.options
        ratios = np.array([c.shape[1] / max(c.shape[0], 1) for c in crops])
        out = []
        for idx in batches(np.argsort(ratios, kind="stable"), batch_size or o.batch_size):
            width = self._width(ratios[idx].max())
            batch = np.zeros((len(idx), 3, o.height, width), np.float32)  # 0 = mid-grey after normalising
            for b, i in enumerate(idx):
                w = min(width, max(1, math.ceil(o.height * ratios[i])))
                self.normalize.into(cv2.resize(crops[i], (w, o.height)), batch[b])
            out.append((idx, batch))
        return out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return next(iter(self.session.run({self.input_name: batch}).values()))

    def postprocess(self, probs: np.ndarray) -> tuple[list[str], list[float]]:
        return self.decode(probs)

    def __call__(self, crops: np.ndarray | Sequence[np.ndarray]) -> RecResult:
        if isinstance(crops, np.ndarray) and crops.ndim in (2, 3) and crops.dtype == np.uint8:
            crops = [crops]
        crops = [as_bgr(c) for c in crops]
        texts, scores = [""] * len(crops), [0.0] * len(crops)
        t = Timings()
        if not crops:
            return RecResult(texts, scores, t)
        sw = Stopwatch()
        prepared = self.preprocess(crops)
        t.preprocess_ms += sw.lap()
        for idx, batch in prepared:
            probs = self.infer(batch)
            t.model_ms += sw.lap()
            for i, text, score in zip(idx, *self.postprocess(probs)):
                texts[i], scores[i] = text, score
            t.postprocess_ms += sw.lap()
        return RecResult(texts, scores, t)


def load_dictionary(paths: dict[str, Path]) -> list[str]:
    """A rec model's dictionary: the ``dict`` file if there is one, else the ONNX metadata ``character``."""
    if "dict" in paths:
        # One entry per "\n"-terminated line (not str.splitlines, which also splits on rare
        # characters such as U+2028 that a dictionary may hold).
        text = Path(paths["dict"]).read_bytes().decode("utf-8")
        return [line.rstrip("\r") for line in text.removesuffix("\n").split("\n")]
    model = Path(paths["model"])
    text = onnx_metadata(model, "character") if model.suffix == ".onnx" else None
    if text is None:
        raise UserError(f"{model.name} carries no dictionary (ONNX metadata key 'character'); "
                        "pass characters=[...] from the model's keys file")
    return text.splitlines()
