"""The accuracy guard on the user's own data: held-out samples, never the calibration ones.

The metric is the task's when labels exist (top-1 accuracy on a labelled folder or CSV; mAP@0.5
on box labels, COCO JSON or YOLO txt, by :mod:`edgedeploy.optimize.detection_map` — its interval
is approximate: Wilson's on the number of ground-truth boxes), else
agreement with the FP32 model's outputs on the held-out samples: top-1 agreement for
classifier-shaped outputs (rank 2), per-pixel class agreement for a card whose task is
segmentation — both counted only on *decisive* FP32 decisions, whose top-2 margin is at least
:data:`TIE_SHARE` of that sample's (pixel's) output range: a near-tie flips under any rounding, so
counting it would spend the budget on noise no precision can avoid (the count left out is
stated) — else output fidelity: 1 - relative L2 error, per feature
channel (:func:`edgedeploy.optimize.sensitivity.feature_axis`) and per sample, averaged — so a
detector whose scores (0..1) are ruined beside box coordinates in pixels fails it, though the
coordinates carry almost all of the output's energy. Every figure carries a 95% confidence interval (Wilson for proportions,
normal for means), so the guard's own sampling noise can be compared with the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
TIE_SHARE = 0.05  # FP32 top-2 margin under 5% of the output range: a tie, not a decision to keep
# (8-bit rounding, 1/256 of each tensor's range per layer, accumulates to a few % of the output range:
# measured on the byo test classifier, INT8 logit error p90 5%, p99 9% of the range)


def decisive(ref: np.ndarray, axis: int) -> np.ndarray:
    """Where FP32's decision along ``axis`` is not a near-tie (see :data:`TIE_SHARE`)."""
    top = np.sort(ref, axis=axis)
    lo, hi = np.take(top, 0, axis=axis), np.take(top, -1, axis=axis)
    return np.take(top, -1, axis=axis) - np.take(top, -2, axis=axis) >= TIE_SHARE * np.maximum(hi - lo, 1e-12)


@dataclass(frozen=True)
class Score:
    """A metric value in 0..1 with its 95% interval half-width (also 0..1) and sample count."""

    value: float
    half_width: float
    n: int


def proportion_ci(hits: int, n: int) -> float:
    """Half-width of the Wilson 95% interval of ``hits`` / ``n`` (scipy's implementation)."""
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.high - ci.low) / 2


def mean_ci(values: np.ndarray) -> float:
    from scipy.stats import norm

    if len(values) < 2:
        return math.inf
    return float(norm.ppf(0.5 + CONFIDENCE / 2) * np.std(values, ddof=1) / math.sqrt(len(values)))


class HeldOutScorer:
    """Scores a model file on an engine against labels, or against the FP32 model, on held-out feeds."""

    def __init__(self, feeds: list[dict], *, ref_path, labels: list[int] | None, source: str, threads: int = 2,
                 task=None, boxes: list[np.ndarray] | None = None):
        from edgedeploy.vocab import Task

        self.feeds, self.labels, self.threads, self.boxes = feeds, labels, threads, boxes
        self._cache: dict[tuple[str, str, str], Score] = {}
        if boxes is not None:
            self._boxes_metric(ref_path, source)
            return
        self.segmentation = task == Task.SEGMENTATION
        self.ref = None if labels is not None else self._outputs(ref_path, "onnxruntime")
        first = self._outputs(ref_path, "onnxruntime", feeds[:1])[0] if labels is not None else self.ref[0]
        self.rank2 = all(v.ndim == 2 for v in first.values())
        if labels is not None:
            n_out = next(iter(first.values())).shape[-1]
            if not self.rank2 or max(labels) >= n_out:
                from edgedeploy.errors import UserError

                raise UserError(f"labels in {source} name class index {max(labels)}, but the model's first output "
                                f"has {n_out} values per sample; labels must be classes the model has")
        self.segmentation = self.segmentation and labels is None and all(v.ndim == 4 for v in first.values())
        self.metric = ("top-1 accuracy" if labels is not None else "top-1 agreement with FP32" if self.rank2
                       else "pixel agreement with FP32 (per-pixel class, mean over images)" if self.segmentation
                       else "output fidelity with FP32 (1 - relative L2 error)")
        self.source = f"{self.metric} on {len(feeds)} held-out samples ({source})"
        self.decisive = None
        if self.ref is not None and (self.rank2 or self.segmentation):
            axis = -1 if self.rank2 else 1
            self.decisive = [{k: decisive(v, axis) for k, v in r.items()} for r in self.ref]
            total = sum(m.size for d in self.decisive for m in d.values())
            ties = total - sum(int(m.sum()) for d in self.decisive for m in d.values())
            what = "samples" if self.rank2 else "pixels"
            self.source += (f"; {ties} of {total} {what} left out as FP32 near-ties (top-2 margin under "
                            f"{100 * TIE_SHARE:g}% of the output range)")

    def _boxes_metric(self, ref_path, source: str) -> None:
        from edgedeploy.errors import UserError
        from edgedeploy.optimize import detection_map

        self.ref, self.rank2, self.segmentation, self.decisive = None, False, False, None
        n_out = detection_map.n_classes(next(iter(self._outputs(ref_path, "onnxruntime", self.feeds[:1])[0].values())))
        top = max((int(b[:, 0].max()) for b in self.boxes if len(b)), default=-1)
        if top >= n_out:
            raise UserError(f"box labels in {source} name class index {top}, but the model's output has {n_out} "
                            "classes; labels must be classes the model has")
        n_gt = sum(len(b) for b in self.boxes)
        self.metric = "mAP@0.5 (pycocotools COCOeval)"
        self.source = (f"{self.metric} on {len(self.feeds)} held-out images with {n_gt} boxes ({source}); "
                       "interval approximate (Wilson on the box count)")

    def _outputs(self, path, engine: str, feeds=None, precision: str | None = None) -> list[dict]:
        from edgedeploy import engines
        from edgedeploy.engines import EngineOptions

        opts = EngineOptions(threads=self.threads, **({"precision": precision} if precision else {}))
        with engines.load(str(path), engine=engine, options=opts) as s:
            return [s.run(f) for f in (self.feeds if feeds is None else feeds)]

    def score(self, path, engine: str, precision: str | None = None) -> Score:
        """The metric of ``path`` on ``engine`` (``precision``: the engine's run-time precision, e.g. bf16)."""
        key = (score_key(path), str(engine), str(precision))
        if key not in self._cache:
            self._cache[key] = self._score(path, engine, precision)
        return self._cache[key]

    def __call__(self, path, engine: str) -> float:
        return self.score(path, engine).value

    def _score(self, path, engine: str, precision: str | None = None) -> Score:
        outs = self._outputs(path, engine, precision=precision)
        first = [next(iter(o.values())) for o in outs]
        if self.boxes is not None:
            from edgedeploy.optimize import detection_map

            n_gt = max(1, sum(len(b) for b in self.boxes))
            v = detection_map.map50([detection_map.decode(o) for o in first], self.boxes)
            return Score(v, proportion_ci(round(v * n_gt), n_gt), n_gt)
        if self.labels is not None:
            pred = np.concatenate([np.argmax(o, -1).ravel() for o in first])
            hits = int(np.sum(pred == np.asarray(self.labels)))
            return Score(hits / len(pred), proportion_ci(hits, len(pred)), len(pred))
        if self.rank2:
            agree = np.concatenate([(np.argmax(o[k], -1) == np.argmax(r[k], -1))[d[k]].ravel()
                                    for o, r, d in zip(outs, self.ref, self.decisive) for k in r])
            if not agree.size:
                return Score(1.0, 1.0, 0)
            return Score(float(agree.mean()), proportion_ci(int(agree.sum()), agree.size), agree.size)
        if self.segmentation:  # per image: the share of pixels whose class (argmax over channels) is FP32's
            per = np.array([np.mean([np.mean((np.argmax(o[k], 1) == np.argmax(r[k], 1))[d[k]]) if d[k].any() else 1.0
                                     for k in r]) for o, r, d in zip(outs, self.ref, self.decisive)])
            return Score(float(per.mean()), mean_ci(per), len(per))
        fid = np.array([1.0 - min(1.0, float(np.mean([_relative_error(r[k], o[k]) for k in r])))
                        for o, r in zip(outs, self.ref)])
        return Score(float(fid.mean()), mean_ci(fid), len(fid))


def score_key(path) -> str:
    """What a model's score is cached under: its content. The mixed-precision search rewrites one
    file between steps; keyed by path, every step after the first got the first step's score."""
    from edgedeploy.util import sha256_file

    return sha256_file(path)


def _relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    """Mean over feature channels of ||got - ref|| / ||ref|| (channels without signal left out)."""
    from edgedeploy.optimize.sensitivity import channel_sums

    num, den = channel_sums(ref, got)
    live = den > 0
    return float(np.mean(np.sqrt(num[live] / den[live]))) if live.any() else 0.0
