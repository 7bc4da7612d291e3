"""Scoring a task's predictions against ground truth: each function takes (predictions,
samples) and returns (headline value in [0, 1], details). :data:`edgedeploy.evaluation.TASKS`
says which one scores which task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgedeploy.datasets.iso6346 import parse_container_code, prefixes
from edgedeploy.evaluation import metrics as M

# Layout classes that are made of text lines: on pages of paragraphs, any of them is right.
TEXT_CLASSES = frozenset({"text", "title", "header", "footer", "reference", "figure_caption",
                          "table_caption"})
LINE_COVERED = 0.5  # share of a line's box inside predicted text boxes for the line to count as found


def score_det(preds, samples):
    r = M.detection_prf(preds, [s.boxes for s in samples])
    return r.hmean, r.to_dict()


def score_rec(preds, samples):
    r = M.recognition_metrics(preds, [s.text for s in samples])
    loose = M.recognition_metrics(preds, [s.text for s in samples], ignore_space=True)
    return r.accuracy, {"line_accuracy": r.accuracy, **r.to_dict(), "line_accuracy_ignoring_spaces": loose.accuracy}


def score_class(preds, samples):
    r = M.classification_accuracy(preds, [s.label for s in samples])
    return r.accuracy, r.to_dict()


def score_layout(preds, samples):
    """Blocks: each true paragraph/title block matched one-to-one by a predicted box of a text
    class at IoU >= 0.5, the text classes taken as one (hmean, precision, recall); boxes of
    other classes (figure, table, equation) are false positives. Also: the same per class
    (``class_hmean``: "title" must be called title), and ``line_recall``, the share of true
    lines with at least half of their box inside predicted text-class boxes."""
    boxes = [[b for b, lab in zip(p.boxes, p.labels)] for p in preds]
    labels = [["text" if lab in TEXT_CLASSES else lab for lab in p.labels] for p in preds]
    agnostic = M.detection_prf(boxes, [s.blocks for s in samples], pred_labels=labels,
                               gt_labels=[["text"] * len(s.blocks) for s in samples])
    by_class = M.detection_prf(boxes, [s.blocks for s in samples], pred_labels=[p.labels for p in preds],
                               gt_labels=[s.block_labels for s in samples])
    covered = total = 0
    for p, s in zip(preds, samples):
        text_boxes = [b for b, lab in zip(p.boxes, p.labels) if lab in TEXT_CLASSES]
        covered += sum(_inside(line, text_boxes) >= LINE_COVERED for line in s.boxes)
        total += len(s.boxes)
    d = agnostic.to_dict()
    d.pop("per_class")
    d.update(class_hmean=by_class.hmean, per_class=by_class.to_dict()["per_class"],
             line_recall=covered / total if total else 1.0)
    return agnostic.hmean, d


def _inside(quad: np.ndarray, rects: Sequence[np.ndarray]) -> float:
    """Share of the area of ``quad``'s bounding box inside the union of ``rects`` (x1,y1,x2,y2)."""
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    mask = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), bool)
    for r in rects:
        a, b, c, d = np.round(np.asarray(r) - [x0, y0, x0, y0]).astype(int)
        mask[max(b, 0):max(d, 0), max(a, 0):max(c, 0)] = True
    return float(mask.mean())


def score_ocr(pred_boxes: Sequence[Sequence], pred_texts: Sequence[Sequence[str]],
              samples: Sequence) -> tuple[float, dict]:
    """End-to-end OCR on pages: each true line is paired one-to-one with the predicted line of
    highest IoU >= 0.5 (ICDAR's greedy rule) and scored on that line's text; a missed line
    reads as "". Returns (line accuracy, details: line_accuracy, cer over true lines, the
    accuracy with spaces ignored, detection precision/recall/hmean, ``extra_lines`` predicted where no line is)."""
    read, truth, extra = [], [], 0
    for boxes, texts, s in zip(pred_boxes, pred_texts, samples):
        pairs = _pair(M._iou_matrix(list(boxes), list(s.boxes)), 0.5)
        by_gt = {j: texts[i] for i, j in pairs}
        read += [by_gt.get(j, "") for j in range(len(s.boxes))]
        truth += list(s.texts)
        extra += len(boxes) - len(pairs)
    rec = M.recognition_metrics(read, truth)
    loose = M.recognition_metrics(read, truth, ignore_space=True)  # PaddleOCR's default
    det = M.detection_prf([list(b) for b in pred_boxes], [s.boxes for s in samples])
    return rec.accuracy, {"line_accuracy": rec.accuracy, "cer": rec.cer, "lines": rec.lines,
                          "exact": rec.exact, "line_accuracy_ignoring_spaces": loose.accuracy,
                          "det_precision": det.precision, "det_recall": det.recall,
                          "det_hmean": det.hmean, "extra_lines": extra}


def _pair(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(prediction, truth) pairs, one-to-one, taken greedily by descending IoU >= threshold."""
    rows, cols = np.nonzero(iou >= threshold)
    used_p, used_g, pairs = set(), set(), []
    for k in np.argsort(-iou[rows, cols], kind="stable"):
        i, j = int(rows[k]), int(cols[k])
        if i not in used_p and j not in used_g:
            used_p.add(i), used_g.add(j), pairs.append((i, j))
    return pairs


def score_ocr_system(preds, samples):
    return score_ocr([[line.box for line in p.lines] for p in preds], [p.texts for p in preds], samples)


def container_code(texts: Sequence[str]) -> str | None:
    """What a gate would take from OCR'd lines (reading order): the valid ISO 6346 code found by
    :func:`~edgedeploy.datasets.iso6346.parse_container_code` (look-alikes coerced where the check
    digit confirms them, as the gate pipeline reads); else, where an owner + category + serial
    was read but no check digit confirms it, the letters and digits read (scored as a rejected
    read: a gate would ask again); else None (a missed container)."""
    read = parse_container_code(" ".join(texts))
    return read.code or (read.raw if prefixes(read.raw) else None)


def score_container(preds, samples):
    codes = [container_code(p.texts) for p in preds]
    r = M.container_accuracy(codes, [s.code for s in samples])
    return r.accuracy, {"container_accuracy": r.accuracy, **r.to_dict()}
