import json
import random

import numpy as np
import pytest

from edgedeploy.datasets import make_pages
from edgedeploy.errors import UserError
from edgedeploy.evaluation.metrics import (classification_accuracy, confusion_matrix,
                                           container_accuracy, detection_prf, edit_distance,
                                           recognition_metrics)


def reference_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def square(cx, cy, half, angle_deg=0.0):
    t = np.deg2rad(angle_deg)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (corners @ rot.T + [cx, cy]).astype(np.float32)


# --- edit distance and recognition -----------------------------------------------------------

def test_edit_distance_known():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("a" * 100, "a" * 99 + "b") == 1  # longer than a machine word


def test_edit_distance_matches_dynamic_programming():
    rng = random.Random(1)
    for _ in range(300):
        a = "".join(rng.choice("ab c1") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("abd 1") for _ in range(rng.randint(0, 40)))
        assert edit_distance(a, b) == reference_distance(a, b) == edit_distance(b, a)


def test_recognition_metrics():
    result = recognition_metrics(["Total 42.50", "heIlo world", ""], ["Total 42.50", "hello world",
                                                                      "abc"])
    assert result.exact == 1 and result.accuracy == pytest.approx(1 / 3)
    assert result.edits == 1 + 3 and result.gt_chars == 11 + 11 + 3
    assert result.cer == pytest.approx(4 / 25)
    # What a reader cannot see does not count: outer and double spaces.
    assert recognition_metrics(["  a  b "], ["a b"]).accuracy == 1.0
    assert recognition_metrics(["ab"], ["a b"]).accuracy == 0.0
    assert recognition_metrics(["ab"], ["a b"], ignore_space=True).accuracy == 1.0
    assert recognition_metrics(["AB"], ["ab"], ignore_case=True).cer == 0.0
    assert recognition_metrics([None], ["ab"]).cer == 1.0
    with pytest.raises(UserError, match="2 predictions for 1"):
        recognition_metrics(["a", "b"], ["a"])


# --- detection -------------------------------------------------------------------------------

def test_detection_on_generated_pages():
    gt = [page.boxes for page in make_pages(2, seed=0)]
    assert detection_prf(gt, gt).hmean == 1.0
    # Moved down by 60% of their height, no box overlaps its own by half any more.
    moved = [[b + np.float32([0, 0.6 * np.ptp(b[:, 1])]) for b in boxes] for boxes in gt]
    result = detection_prf(moved, gt)
    assert (result.tp, result.hmean) == (0, 0.0) and result.fp == result.fn == sum(map(len, gt))
    # Missing one line: recall drops, precision stays.
    partial = [boxes[1:] for boxes in gt]
    result = detection_prf(partial, gt)
    assert result.precision == 1.0 and result.fn == 2 and result.recall < 1.0


def test_polygon_iou_threshold():
    # A square and itself turned 45 degrees: the overlap is a regular octagon, IoU = 1/sqrt(2).
    gt, pred = [[square(50, 50, 10)]], [[square(50, 50, 10, 45)]]
    assert detection_prf(pred, gt, iou=0.70).tp == 1
    assert detection_prf(pred, gt, iou=0.71).tp == 0


def test_axis_aligned_boxes_and_one_to_one():
    gt = [[[0, 0, 10, 10]]]
    # Two squares offset by 5 px: IoU 50 / 150.
    assert detection_prf([[[5, 0, 15, 10]]], gt).tp == 0
    assert detection_prf([[[5, 0, 15, 10]]], gt, iou=0.33).tp == 1
    dup = detection_prf([[[0, 0, 10, 10], [0, 0, 10, 10]]], gt)
    assert (dup.tp, dup.fp, dup.fn) == (1, 1, 0)


def test_greedy_matching_takes_the_best_pair_first():
    gt = [[[0, 0, 10, 10], [4, 0, 14, 10]]]
    # The first prediction overlaps gt #1 (0.82) and gt #2 (0.54); the second is gt #1
    # exactly. Matching the first prediction first would leave the second unmatched.
    preds = [[[1, 0, 11, 10], [0, 0, 10, 10]]]
    assert detection_prf(preds, gt).tp == 2


def test_empty_images():
    none = detection_prf([[], []], [[], []])
    assert (none.precision, none.recall) == (1.0, 1.0)
    missed = detection_prf([[]], [[[0, 0, 5, 5]]])
    assert (missed.precision, missed.recall, missed.hmean) == (0.0, 0.0, 0.0)
    with pytest.raises(UserError):
        detection_prf([[]], [[], []])
    with pytest.raises(UserError, match="shape"):
        detection_prf([[[1, 2, 3]]], [[[0, 0, 5, 5]]])


def test_classes_and_map():
    gt = [[[0, 0, 10, 10], [20, 0, 30, 10]]]
    labels = [["text", "table"]]
    same = detection_prf(gt, gt, pred_labels=labels, gt_labels=labels, pred_scores=[[0.9, 0.8]])
    assert same.hmean == 1.0 and same.map == 1.0 and set(same.per_class) == {"text", "table"}
    swapped = detection_prf(gt, gt, pred_labels=[["table", "text"]], gt_labels=labels)
    assert swapped.tp == 0 and swapped.per_class["text"].fn == 1
    # One gt; a higher-scored miss before the hit: precision 1/2 at recall 1, AP = 0.5.
    ranked = detection_prf([[[50, 50, 60, 60], [0, 0, 10, 10]]], [[[0, 0, 10, 10]]],
                           pred_labels=[["a", "a"]], gt_labels=[["a"]], pred_scores=[[0.9, 0.5]])
    assert ranked.per_class["a"].ap == pytest.approx(0.5) and ranked.map == pytest.approx(0.5)
    json.dumps(ranked.to_dict())


def test_scores_decide_matching_and_ap_uses_the_precision_envelope():
    one = dict(pred_labels=[["a", "a"]], gt_labels=[["a"]])
    # The higher-scored, exact prediction takes the ground truth; the other is the miss.
    res = detection_prf([[[1, 0, 11, 10], [0, 0, 10, 10]]], [[[0, 0, 10, 10]]],
                        pred_scores=[[0.1, 0.9]], **one)
    assert (res.tp, res.fp) == (1, 1) and res.map == pytest.approx(1.0)
    # Ranked hit, miss, miss, hit, hit over 3 gts: precisions 1, 1/2, 3/5 at recalls 1/3,
    # 2/3, 1; the envelope lifts 1/2 to 3/5, so AP = (1 + 0.6 + 0.6) / 3.
    gt = [[[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]]
    preds = [[[0, 0, 10, 10], [100, 0, 110, 10], [120, 0, 130, 10], [20, 0, 30, 10],
              [40, 0, 50, 10]]]
    res = detection_prf(preds, gt, pred_labels=[["a"] * 5], gt_labels=[["a"] * 3],
                        pred_scores=[[0.9, 0.8, 0.7, 0.6, 0.5]])
    assert res.map == pytest.approx(2.2 / 3)


# --- classification and containers -----------------------------------------------------------

def test_classification():
    preds = ["0", "90", "180", "90", "0", "45"]
    labels = ["0", "90", "180", "270", "0", "0"]
    result = classification_accuracy(preds, labels)
    assert (result.correct, result.total) == (4, 6) and result.accuracy == pytest.approx(4 / 6)
    assert result.classes == ("0", "90", "180", "270", "45")
    assert result.confusion[3] == (0, 1, 0, 0, 0)  # a 270 read as 90
    assert result.confusion[0] == (2, 0, 0, 0, 1)
    assert result.per_class_recall["270"] == 0.0 and result.per_class_recall["0"] == 2 / 3
    names, matrix = confusion_matrix([1, 0], [0, 0], classes=["0", "1"])
    assert names == ("0", "1") and matrix.tolist() == [[1, 1], [0, 0]]
    json.dumps(result.to_dict())


def test_container_accuracy():
    gt = ["CSQU3054383"] * 5
    preds = ["csqu 305438 3", "CSQU3054384", None, "BICU1234565", "CSQU3O54383"]
    result = container_accuracy(preds, gt)
    assert (result.correct, result.rejected, result.wrong_accepted, result.missing) == (1, 2, 1, 1)
    assert result.accuracy == pytest.approx(0.2) and result.total == 5
    assert result.to_dict()["rejected"] == 2
