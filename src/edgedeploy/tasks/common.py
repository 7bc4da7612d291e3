"""What every task shares: the session it runs on, image normalisation, timings, output checks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.zoo.registry import Preprocess


class SessionLike(Protocol):
    """Anything with ``inputs`` / ``outputs`` (lists of TensorSpec) and ``run(feeds) -> dict``."""

    inputs: list
    outputs: list

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class Timings:
    """Wall-clock time of one call, in milliseconds, split where it can be optimised apart."""

    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.model_ms + self.postprocess_ms

    def __add__(self, other: Timings) -> Timings:
        return Timings(self.preprocess_ms + other.preprocess_ms, self.model_ms + other.model_ms,
                       self.postprocess_ms + other.postprocess_ms)


class Stopwatch:
    """``lap()`` returns milliseconds since the previous lap (or since creation)."""

    def __init__(self) -> None:
        self._t = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        ms, self._t = (now - self._t) * 1e3, now
        return ms


class Normalizer:
    """uint8 HxWx3 image(s) → float32 NCHW ``(pixel * scale - mean) / std`` in the model's channel order."""

    def __init__(self, pre: Preprocess):
        if pre.channel_order not in ("BGR", "RGB"):
            raise UserError(f"channel_order {pre.channel_order!r} is not supported; expected 'BGR' or 'RGB'")
        std = np.asarray(pre.std, np.float32)
        # One multiply-add per channel: x * (scale/std) + (-mean/std).
        self.alpha = (np.float32(pre.scale) / std).astype(np.float32)
        self.beta = (-np.asarray(pre.mean, np.float32) / std).astype(np.float32)
        self.swap = pre.channel_order == "RGB"  # inputs are BGR (cv2)

    def into(self, img: np.ndarray, out: np.ndarray) -> None:
        """Write ``img`` (HxWx3 uint8, BGR) normalised into ``out`` (3xH'xW' float32, H'≥H, W'≥W)."""
        h, w = img.shape[:2]
        for c in range(3):
            src = img[:, :, 2 - c if self.swap else c]
            np.multiply(src, self.alpha[c], out=out[c, :h, :w], casting="unsafe")
            out[c, :h, :w] += self.beta[c]

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """One BGR uint8 image → 1x3xHxW float32."""
        out = np.empty((1, 3, *img.shape[:2]), np.float32)
        self.into(img, out[0])
        return out


def as_bgr(img: np.ndarray) -> np.ndarray:
    """Check an image is HxW or HxWx3/4 uint8 and return HxWx3 BGR."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise UserError(f"image has dtype {img.dtype}; expected uint8 (0..255), as cv2.imread returns")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    raise UserError(f"image has shape {img.shape}; expected HxW, HxWx3 (BGR) or HxWx4")


def single_input(session: SessionLike) -> str:
    """Name of the model's one image input (rank 4, 3 channels)."""
    if len(session.inputs) != 1:
        raise UserError(f"model has {len(session.inputs)} inputs; an image task expects one (Nx3xHxW)")
    spec = session.inputs[0]
    if len(spec.shape) != 4 or spec.shape[1] not in (None, 3):
        raise UserError(f"model input {spec.name!r} has shape {_shape(spec)}; an image task expects Nx3xHxW")
    return spec.name


def describe_outputs(outputs: Sequence) -> str:
    return ", ".join(f"{o.name} {np.dtype(o.dtype)} {_shape(o)}" for o in outputs) or "none"


def _shape(spec) -> str:
    return "x".join("?" if d is None else str(d) for d in spec.shape)


def batches(order: np.ndarray, size: int):
    """Consecutive slices of ``order`` with at most ``size`` items each."""
    for start in range(0, len(order), size):
        yield order[start:start + size]


def onnx_metadata(path: str | Path, key: str) -> str | None:
    """The value of ``key`` in an ONNX model's metadata_props (weights are not loaded)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == key), None)


def make_options(options_cls, given: dict):
    """``options_cls(**given)``, with an unknown key reported as a UserError with a suggestion."""
    known = [f.name for f in fields(options_cls)]
    for key in given:
        if key not in known:
            raise UserError(f"unknown option {key!r}{did_you_mean(key, known)} for {options_cls.__name__}; "
                            f"known: {', '.join(known)}")
    return options_cls(**given)
