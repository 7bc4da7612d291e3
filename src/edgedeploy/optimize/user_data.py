"""Calibration and held-out evaluation feeds from the user's own data (optimize's side of it).

The data (:mod:`edgedeploy.datasets.user`) go through the model card, checked against the
graph first. One set given: split into calibration and held-out samples by a fixed seed. Two
sets (``calib`` and ``data``): each used whole, unless they are the same path (then split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy.datasets import user
from edgedeploy.optimize import calibration

DEFAULT_CALIB = 32
MAX_EVAL = 500
RANDOM_EVAL = 32


@dataclass
class HeldOut:
    """Evaluation feeds (input name → array), optional labels, where they came from, notes."""

    feeds: list[dict]
    source: str
    labels: list[int] | None = None
    notes: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None


def _as_data(x, card, *, what: str, min_samples: int) -> user.UserData:
    if isinstance(x, (str, Path)):
        return user.load(x, card=card, min_samples=min_samples, what=what)
    arrays = [np.asarray(next(iter(t.values())) if isinstance(t, dict) else t) for t in x]
    return user.UserData(arrays, f"{len(arrays)} given arrays")


def prepare(session, model_path, card, *, calib, data, calib_samples: int | None, eval_samples: int | None,
            method: str, min_calib: int, need_calib: bool = True, say=lambda msg: None) -> tuple[calibration.CalibrationSet, HeldOut]:
    """(calibration set, held-out evaluation set) for ``session``'s model from the user's ``calib``/``data``."""
    from edgedeploy import cards

    if card is not None:
        card = cards.resolve(card, model_path)
        say(f"model card: {card.describe()}")
    name = session.inputs[0].name
    source = calib if calib is not None else data
    say(f"reading {source}")
    both = calib is not None and data is not None and str(calib) != str(data)
    first = _as_data(source, card, what="calib" if calib is not None else "data", min_samples=min_calib)
    if both:
        cal = first if calib_samples is None else first.take(range(min(calib_samples, len(first))))
        ev = _as_data(data, card, what="data", min_samples=user.MIN_SAMPLES)
        ev = ev if eval_samples is None else ev.take(range(min(eval_samples, len(ev))))
        statement = f"calibration: {cal.source}; evaluation: {ev.source} (separate sets)"
    elif not need_calib:  # FP16/FP32: nothing is calibrated, every sample can score
        cal = ev = first if eval_samples is None else first.take(range(min(eval_samples, len(first))))
        statement = f"{len(ev)} evaluation samples from {first.source} (no calibration at this precision)"
    else:
        n_cal = calib_samples or min(DEFAULT_CALIB, max(min_calib, len(first) // 3))
        cal, ev, statement = user.split(first, n_cal, max_eval=eval_samples or MAX_EVAL)
    calib_set = calibration.build(session, calib=[{name: t} for t in cal.tensors], method=method,
                                  min_samples=min_calib)
    calib_set.source = statement
    held = HeldOut([{name: t.astype(calib_set.feeds[0][name].dtype, copy=False)} for t in ev.tensors], statement,
                   labels=ev.labels, notes=[*first.notes, *(ev.notes if both else [])], boxes=ev.boxes)
    return calib_set, held


def random_held_out(session, model, n: int | None) -> HeldOut:
    """Seeded random inputs (no data given: FP16/FP32 only) — agreement with FP32 on them, said so."""
    shape = model.zoo.example_shape if model.zoo else None
    feeds = [session.example_feeds(shape, seed=10_000 + i) for i in range(n or RANDOM_EVAL)]
    return HeldOut(feeds, f"{len(feeds)} seeded random inputs (no data given)",
                   notes=["no evaluation data: accuracy is agreement with FP32 on random inputs; give data for a real check"])
