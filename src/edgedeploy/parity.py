"""Do the engines agree? Each model on each engine, outputs compared with a reference engine.

The reference is the model's native engine: ONNX Runtime for ONNX models, Paddle Inference
for Paddle models. Inputs are image-like (uniform random pixels through the model's own
normalisation), seeded, at the zoo's example shape. Two outputs agree when every element
satisfies ``|a - b| <= ATOL + RTOL * max|reference|``. Latency here is a quick median of a
few warm runs in one process — a sanity figure; ``edgedeploy bench`` measures properly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from edgedeploy import engines
from edgedeploy.engines import EngineOptions
from edgedeploy.errors import UserError
from edgedeploy.ingest import Model, load_model

log = logging.getLogger(__name__)

ATOL = 1e-4
RTOL = 1e-3


@dataclass
class ParityRow:
    model: str
    engine: str
    reference: str
    status: str  # "ok" | "differs" | "failed" | "n/a"
    max_abs_diff: float | None
    tolerance: float | None
    latency_ms: float | None  # median of warm runs
    load_ms: float | None
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def image_like_input(model: Model, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Uniform random pixels, normalised as the model expects (ImageNet-style if unknown)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=shape).astype(np.float32)
    pre = model.zoo.preprocess if model.zoo else None
    mean = np.array(pre.mean if pre else (0.485, 0.456, 0.406), np.float32).reshape(1, 3, 1, 1)
    std = np.array(pre.std if pre else (0.229, 0.224, 0.225), np.float32).reshape(1, 3, 1, 1)
    scale = pre.scale if pre else 1 / 255.0
    if len(shape) == 4 and shape[1] == 3:
        return ((pixels * scale - mean) / std).astype(np.float32)
    return (pixels * (1 / 255.0)).astype(np.float32)


def reference_engine(model: Model) -> str:
    return engines.resolve("auto", model.format)


def check_model(source, engine_names: list[str], *, shape: tuple[int, ...] | None = None, runs: int = 5,
                threads: int | None = None, seed: int = 0) -> list[ParityRow]:
    """One row per engine for ``source``; the reference engine's row comes first."""
    model = load_model(source)
    shape = shape or (model.zoo.example_shape if model.zoo else None)
    ref_name = reference_engine(model)
    order = [ref_name] + [e for e in engine_names if e != ref_name]
    options = EngineOptions(threads=threads)
    rows: list[ParityRow] = []
    reference: dict | None = None
    feeds = None
    for name in order:
        why_not = engines.runnable(name, model.format)
        if why_not or not engines.available(name):
            rows.append(ParityRow(model.name, name, ref_name, "n/a", None, None, None, None,
                                  why_not or f"not installed: {engines.spec(name).install}"))
            continue
        try:
            t = time.perf_counter()
            session = engines.load(model, engine=name, options=options)
            load_ms = (time.perf_counter() - t) * 1000
            if feeds is None:
                if shape is None and any(d is None for d in session.inputs[0].shape[1:]):
                    raise UserError(f"{model.name} has a dynamic input shape; give one with the shape parameter")
                use = shape or tuple(d or 1 for d in session.inputs[0].shape)
                feeds = {session.inputs[0].name: image_like_input(model, use, seed)}
                feeds.update({k: v for k, v in session.example_feeds(seed=seed).items() if k not in feeds})
            out = session.run(feeds)  # also the warm-up (first-run allocation, kernel selection)
            latency = session.time(feeds, runs=runs).stat("p50")
            session.release()
        except UserError as exc:
            rows.append(ParityRow(model.name, name, ref_name, "failed", None, None, None, None, str(exc)))
            continue
        if reference is None:
            reference = out
            rows.append(ParityRow(model.name, name, ref_name, "ok", 0.0, 0.0, latency, load_ms, "reference"))
            continue
        diff, tol = compare(reference, out)
        rows.append(ParityRow(model.name, name, ref_name, "ok" if diff <= tol else "differs", diff, tol,
                              latency, load_ms))
    return rows


def compare(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> tuple[float, float]:
    """(largest element difference over all outputs, the tolerance it is held to)."""
    worst, tol = 0.0, np.inf
    for (_, ref), (_, got) in zip(reference.items(), other.items()):
        if ref.shape != got.shape:
            return float("inf"), 0.0
        worst = max(worst, float(np.max(np.abs(ref.astype(np.float64) - got))) if ref.size else 0.0)
        tol = min(tol, ATOL + RTOL * float(np.max(np.abs(ref))) if ref.size else ATOL)
    return worst, tol
