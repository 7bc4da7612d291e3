"""mAP@0.5 of a YOLO-style detector on the user's box labels, with pycocotools' COCOeval.

Decoding (the card's ``output_format: yolo``): ``N x anchors x (4 + 1 + classes)`` — box centre
and size in input pixels, objectness, class probabilities — (or the transposed
``N x (5 + classes) x anchors``); score = objectness x class probability, kept above
:data:`SCORE_MIN`, per-class NMS at IoU :data:`NMS_IOU` (OpenCV), at most :data:`MAX_DETS` per
image. AP at IoU 0.5 is COCOeval's (101-point interpolation, all areas, maxDets 100).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from edgedeploy.errors import UserError

SCORE_MIN = 0.001
NMS_IOU = 0.5
MAX_DETS = 100


def n_classes(out: np.ndarray) -> int:
    """Classes a YOLO-style output carries (its last axis is 5 + classes: box, objectness, classes)."""
    width = 0 if out.ndim < 2 else min(out.shape[-1], out.shape[-2])
    if width < 6:
        raise UserError(f"box labels need a YOLO-style output (anchors x (4 box + objectness + classes)); the model's "
                        f"first output has shape {list(out.shape)}: give unlabelled images (agreement with FP32) instead")
    return width - 5


def decode(out: np.ndarray) -> np.ndarray:
    """One image's detections ``D x 6``: x1, y1, x2, y2, score, class (see the module doc)."""
    import cv2

    a = out.reshape(-1, out.shape[-1]) if out.shape[-1] <= out.shape[-2] else out.reshape(out.shape[-2], -1).T
    a = a.astype(np.float32)
    cls = a[:, 5:].argmax(1)
    score = a[:, 4] * a[np.arange(len(a)), 5 + cls]
    keep = score > SCORE_MIN
    a, cls, score = a[keep], cls[keep], score[keep]
    if not len(a):
        return np.zeros((0, 6), np.float32)
    xywh = np.stack([a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2, a[:, 2], a[:, 3]], 1)
    idx = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), SCORE_MIN, NMS_IOU),
                     np.int64).reshape(-1)
    idx = idx[np.argsort(-score[idx])][:MAX_DETS]
    b = xywh[idx]
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:], score[idx, None], cls[idx, None]], 1)


def map50(dets: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """COCO AP at IoU 0.5 over images: ``dets`` per image ``D x 6`` (:func:`decode`), ``truth`` per image
    ``K x 5`` (class, x1, y1, x2, y2). 0.0 when nothing was detected."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    classes = sorted({int(c) for t in truth for c in t[:, 0]} | {int(c) for d in dets for c in d[:, 5]})
    gt = {"images": [{"id": i} for i in range(len(truth))],
          "categories": [{"id": c + 1} for c in classes],
          "annotations": [{"id": n + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                           "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
                          for n, (i, (c, x1, y1, x2, y2)) in enumerate((i, row) for i, t in enumerate(truth)
                                                                         for row in t.tolist())]}
    res = [{"image_id": i, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
           for i, d in enumerate(dets) for x1, y1, x2, y2, s, c in d.tolist()]
    if not res or not gt["annotations"]:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(0.0, float(ev.stats[1]))  # stats[1]: AP at IoU 0.50 (-1 when there is no ground truth)
