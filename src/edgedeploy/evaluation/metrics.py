"""The accuracy measures practitioners report, each returning a small frozen result.

- :func:`detection_prf`: precision / recall / hmean of boxes or polygons, one-to-one matched
  at an IoU threshold (ICDAR-style for text; per class, with mAP@IoU, for layout).
- :func:`recognition_metrics`: exact-line accuracy and character error rate (CER).
- :func:`classification_accuracy`: accuracy and confusion matrix.
- :func:`container_accuracy`: codes read exactly, counting only check-digit-valid reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgedeploy.datasets.iso6346 import is_valid
from edgedeploy.errors import UserError


class _Result:
    def to_dict(self) -> dict:
        """Plain JSON-ready values (nested results and arrays become dicts and lists)."""
        def plain(value):
            if isinstance(value, _Result):
                return value.to_dict()
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value.item() if isinstance(value, np.generic) else value
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _same_length(what: str, preds: Sequence, truth: Sequence) -> None:
    if len(preds) != len(truth):
        raise UserError(f"{what}: {len(preds)} predictions for {len(truth)} ground-truth "
                        "items; give one prediction per item, in the same order")


def _ratio(num: int, den: int, empty: float) -> float:
    return num / den if den else empty


# --- detection ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassPRF(_Result):
    """Detection counts and scores for one class (or all boxes when there are no classes)."""

    precision: float
    recall: float
    hmean: float
    tp: int
    fp: int
    fn: int
    ap: float | None = None  # average precision at the IoU threshold, when scores were given

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int, ap: float | None = None) -> ClassPRF:
        # Nothing predicted and nothing to find is perfect; predicting nothing when there is
        # something to find has precision 0, not "undefined".
        precision = _ratio(tp, tp + fp, 1.0 if fn == 0 else 0.0)
        recall = _ratio(tp, tp + fn, 1.0)
        hmean = _ratio(2 * precision * recall, precision + recall, 0.0)
        return cls(precision, recall, hmean, tp, fp, fn, ap)


@dataclass(frozen=True)
class DetectionResult(_Result):
    """Detection over a data set: totals, ``per_class`` (empty without labels), mAP."""

    precision: float
    recall: float
    hmean: float
    tp: int
    fp: int
    fn: int
    images: int
    iou: float
    per_class: dict[str, ClassPRF]
    map: float | None  # mean AP over classes with ground truth; None without scores


def _as_polygon(box) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    if box.shape == (4,):  # [x1, y1, x2, y2]
        x1, y1, x2, y2 = box
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    if box.ndim != 2 or box.shape[1] != 2 or box.shape[0] < 3:
        raise UserError(f"a box must be [x1, y1, x2, y2] or a polygon of (k >= 3, 2) points, "
                        f"got an array of shape {box.shape}")
    return box


def _iou_matrix(preds: list, gts: list) -> np.ndarray:
    """IoU of every prediction (rows) with every ground-truth box (columns)."""
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)))
    p = [_as_polygon(b) for b in preds]
    g = [_as_polygon(b) for b in gts]
    if all(b.shape == (4,) or _axis_aligned(b) for b in (*p, *g)):
        a = np.array([[b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()] for b in p])
        b = np.array([[q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()] for q in g])
        iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2])
                     - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
        ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3])
                     - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
        inter = iw * ih
        area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        union = area_a[:, None] + area_b[None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    import shapely  # only rotated quadrilaterals and polygons need it

    def valid(points):
        poly = shapely.Polygon(points)
        return poly if poly.is_valid else shapely.make_valid(poly)

    pp, gg = [valid(b) for b in p], [valid(b) for b in g]
    inter = shapely.area(shapely.intersection(np.array(pp)[:, None], np.array(gg)[None, :]))
    union = shapely.area(pp)[:, None] + shapely.area(gg)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _axis_aligned(poly: np.ndarray) -> bool:
    if poly.shape != (4, 2):
        return False
    xs, ys = poly[:, 0], poly[:, 1]
    return (len(set(np.round(xs, 6))) <= 2 and len(set(np.round(ys, 6))) <= 2
            and np.ptp(xs) * np.ptp(ys) > 0)


def _match(iou: np.ndarray, threshold: float, scores: np.ndarray | None) -> np.ndarray:
    """For each prediction, whether it is a true positive under one-to-one matching.

    With scores, predictions take the best free ground truth in descending score order (as
    COCO/VOC); without, pairs are taken greedily by descending IoU (as ICDAR).
    """
    n_pred, n_gt = iou.shape
    hit = np.zeros(n_pred, dtype=bool)
    if n_pred == 0 or n_gt == 0:
        return hit
    taken = np.zeros(n_gt, dtype=bool)
    if scores is not None:
        for i in np.argsort(-scores, kind="stable"):
            candidates = np.where(taken, -1.0, iou[i])
            j = int(np.argmax(candidates))
            if candidates[j] >= threshold:
                hit[i], taken[j] = True, True
        return hit
    rows, cols = np.nonzero(iou >= threshold)
    for k in np.argsort(-iou[rows, cols], kind="stable"):
        i, j = rows[k], cols[k]
        if not hit[i] and not taken[j]:
            hit[i], taken[j] = True, True
    return hit


def _average_precision(scores: list[float], hits: list[bool], n_gt: int) -> float:
    """Area under the precision envelope (all-point interpolation, as VOC 2010+ and ICDAR)."""
    if n_gt == 0:
        return float("nan")
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(np.asarray(hits)[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / n_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def detection_prf(pred_boxes: Sequence[Sequence], gt_boxes: Sequence[Sequence], iou: float = 0.5,
                  *, pred_labels: Sequence[Sequence] | None = None,
                  gt_labels: Sequence[Sequence] | None = None,
                  pred_scores: Sequence[Sequence[float]] | None = None) -> DetectionResult:
    """Precision, recall and hmean of detections over a data set.

    ``pred_boxes[i]`` and ``gt_boxes[i]`` are the boxes of image ``i``: each a polygon
    ``(k, 2)`` in pixels (quadrilaterals from text detectors) or ``[x1, y1, x2, y2]``. A
    prediction counts when matched one-to-one to a ground-truth box with IoU >= ``iou``.
    With ``pred_labels``/``gt_labels`` (one label per box) only equal labels match and
    ``per_class`` is filled. With ``pred_scores`` matching follows the scores and each
    class gets its average precision (``ap``), averaged over classes in ``map``.
    """
    _same_length("detection", pred_boxes, gt_boxes)
    if (pred_labels is None) != (gt_labels is None):
        raise UserError("detection: give both pred_labels and gt_labels, or neither")
    if not 0.0 < iou <= 1.0:
        raise UserError(f"detection: iou threshold must be in (0, 1], got {iou}")
    counts: dict[str, list] = {}  # class -> [scores, hits, n_gt]
    for i, (preds, gts) in enumerate(zip(pred_boxes, gt_boxes)):
        preds, gts = list(preds), list(gts)
        p_lab = list(pred_labels[i]) if pred_labels is not None else [""] * len(preds)
        g_lab = list(gt_labels[i]) if gt_labels is not None else [""] * len(gts)
        scores = (np.asarray(pred_scores[i], dtype=np.float64) if pred_scores is not None
                  else None)
        if len(p_lab) != len(preds) or len(g_lab) != len(gts) or (
                scores is not None and len(scores) != len(preds)):
            raise UserError(f"detection, image {i}: need one label (and score) per box")
        for cls in {*map(str, p_lab), *map(str, g_lab)}:
            pi = [k for k, lab in enumerate(p_lab) if str(lab) == cls]
            gi = [k for k, lab in enumerate(g_lab) if str(lab) == cls]
            hit = _match(_iou_matrix([preds[k] for k in pi], [gts[k] for k in gi]), iou,
                         None if scores is None else scores[pi])
            entry = counts.setdefault(cls, [[], [], 0])
            entry[0].extend(scores[pi].tolist() if scores is not None else [0.0] * len(pi))
            entry[1].extend(hit.tolist())
            entry[2] += len(gi)

    per_class = {}
    for cls, (scores, hits, n_gt) in sorted(counts.items()):
        tp = int(sum(hits))
        ap = _average_precision(scores, hits, n_gt) if pred_scores is not None else None
        per_class[cls] = ClassPRF.from_counts(tp, len(hits) - tp, n_gt - tp, ap)
    total = ClassPRF.from_counts(sum(c.tp for c in per_class.values()),
                                 sum(c.fp for c in per_class.values()),
                                 sum(c.fn for c in per_class.values()))
    aps = [c.ap for c in per_class.values() if c.ap is not None and not np.isnan(c.ap)]
    return DetectionResult(total.precision, total.recall, total.hmean, total.tp, total.fp,
                           total.fn, len(gt_boxes), iou,
                           per_class if gt_labels is not None else {},
                           float(np.mean(aps)) if aps else None)


# --- recognition ----------------------------------------------------------------------------

def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1).

    Bit-parallel (Myers 1999, Hyyrö 2001): one pass of integer operations per character of
    ``b``, whatever the length of ``a``.
    """
    if not a:
        return len(b)
    if not b:
        return len(a)
    peq: dict[str, int] = {}
    for i, char in enumerate(a):
        peq[char] = peq.get(char, 0) | (1 << i)
    mask, last = (1 << len(a)) - 1, 1 << (len(a) - 1)
    pv, mv, score = mask, 0, len(a)
    for char in b:
        eq = peq.get(char, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


@dataclass(frozen=True)
class RecognitionResult(_Result):
    """Line accuracy (exact match) and character error rate (edits / ground-truth chars)."""

    accuracy: float
    cer: float
    lines: int
    exact: int
    edits: int
    gt_chars: int


def _normalise(text: str, ignore_case: bool, ignore_space: bool) -> str:
    text = " ".join(text.split())  # a reader does not see leading, trailing or double spaces
    text = text.replace(" ", "") if ignore_space else text
    return text.lower() if ignore_case else text


def recognition_metrics(preds: Sequence[str], gts: Sequence[str], *, ignore_case: bool = False,
                        ignore_space: bool = False) -> RecognitionResult:
    """Exact-line accuracy and CER of recognised strings against the truth, line by line.

    Both sides have outer spaces stripped and runs of spaces collapsed first;
    ``ignore_space`` drops spaces altogether (PaddleOCR's default), ``ignore_case`` folds case.
    CER = sum of edit distances / sum of ground-truth lengths (can exceed 1).
    """
    _same_length("recognition", preds, gts)
    exact = edits = chars = 0
    for pred, gt in zip(preds, gts):
        pred = _normalise(pred or "", ignore_case, ignore_space)
        gt = _normalise(gt, ignore_case, ignore_space)
        exact += pred == gt
        edits += edit_distance(gt, pred)
        chars += len(gt)
    return RecognitionResult(_ratio(exact, len(gts), 0.0), _ratio(edits, chars, float(edits > 0)),
                             len(gts), exact, edits, chars)


# --- classification -------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassificationResult(_Result):
    """Accuracy and the confusion matrix: ``confusion[i][j]`` counts items of true class
    ``classes[i]`` predicted as ``classes[j]``."""

    accuracy: float
    correct: int
    total: int
    classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    per_class_recall: dict[str, float]


def confusion_matrix(preds: Sequence, labels: Sequence,
                     classes: Sequence | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """(class names, counts with true classes in rows and predicted in columns).

    ``classes`` fixes the order; predicted or true values outside it are appended.
    """
    _same_length("classification", preds, labels)
    names = [str(c) for c in classes] if classes is not None else sorted(
        {str(v) for v in labels}, key=_natural)
    for value in (*labels, *preds):
        if str(value) not in names:
            names.append(str(value))
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, ([index[str(v)] for v in labels], [index[str(v)] for v in preds]), 1)
    return tuple(names), matrix


def _natural(name: str):
    # "90" before "180": numeric labels sort as numbers.
    return (0, float(name), "") if name.lstrip("-").replace(".", "", 1).isdigit() else (1, 0, name)


def classification_accuracy(preds: Sequence, labels: Sequence,
                            classes: Sequence | None = None) -> ClassificationResult:
    """Share of ``preds`` equal to ``labels`` (compared as strings), with the confusion matrix."""
    names, matrix = confusion_matrix(preds, labels, classes)
    correct, total = int(np.trace(matrix)), int(matrix.sum())
    recall = {name: float(matrix[i, i] / matrix[i].sum())
              for i, name in enumerate(names) if matrix[i].sum()}
    return ClassificationResult(_ratio(correct, total, 0.0), correct, total, names,
                                tuple(tuple(int(v) for v in row) for row in matrix), recall)


# --- container codes ------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerResult(_Result):
    """How many codes were read exactly. ``rejected``: reads whose check digit failed (a gate
    would ask again); ``wrong_accepted``: valid-looking reads of the wrong code (the costly
    kind); ``missing``: no read at all."""

    accuracy: float
    correct: int
    total: int
    rejected: int
    wrong_accepted: int
    missing: int


def container_accuracy(pred_codes: Sequence[str | None],
                       gt_codes: Sequence[str]) -> ContainerResult:
    """Share of containers whose code was read exactly, counting only reads whose ISO 6346
    check digit validates. Spaces and case in predictions are ignored."""
    _same_length("container codes", pred_codes, gt_codes)
    correct = rejected = wrong = missing = 0
    for pred, gt in zip(pred_codes, gt_codes):
        pred = "".join((pred or "").split()).upper()
        gt = "".join(gt.split()).upper()
        if not pred:
            missing += 1
        elif not is_valid(pred):
            rejected += 1
        elif pred == gt:
            correct += 1
        else:
            wrong += 1
    return ContainerResult(_ratio(correct, len(gt_codes), 0.0), correct, len(gt_codes),
                           rejected, wrong, missing)
