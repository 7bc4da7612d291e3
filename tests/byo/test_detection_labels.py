"""Detection labels in COCO JSON and YOLO txt, mapped through the card, scored as mAP@0.5 (pycocotools)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgedeploy import cards
from edgedeploy.datasets import user
from edgedeploy.errors import UserError
from edgedeploy.optimize import detection_map
from tests.byo.models import CARD, scene

DET_CARD = {**CARD, "size": [32, 32], "task": "detection", "output_format": "yolo",
            "labels": ["rectangle", "disc", "other"]}


def _coco(tmp_path, n=10, seed=5, drop_image=False, category="disc"):
    imgs, _, objects = scene(n, seed)
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    doc = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "rectangle"}, {"id": 9, "name": category}]}
    for i, (im, objs) in enumerate(zip(imgs, objects)):
        if not (drop_image and i == 3):
            cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), im)
        doc["images"].append({"id": 100 + i, "file_name": f"{i}.png", "width": 64, "height": 64})
        for c, cx, cy, w, h in objs:
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": 100 + i,
                                       "category_id": 9 if c else 7, "bbox": [cx - w / 2, cy - h / 2, w, h]})
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    return tmp_path / "coco.json", objects


def test_coco_json_boxes_go_through_the_card(tmp_path):
    path, objects = _coco(tmp_path)
    data = user.load(path, card=cards.parse(DET_CARD), min_samples=8)
    assert len(data) == 10 and data.tensors[0].shape == (1, 3, 32, 32) and "COCO JSON" in data.source
    c, cx, cy, w, h = objects[0][0]
    want = np.array([c, (cx - w / 2) / 2, (cy - h / 2) / 2, (cx + w / 2) / 2, (cy + h / 2) / 2]).clip(0, 32)
    assert np.allclose(data.boxes[0][0], want)  # 64 px images stretched to 32: coordinates halved
    assert data.take([1, 2]).boxes[1] is data.boxes[2]


def test_coco_json_bad_input_is_one_line(tmp_path):
    path, _ = _coco(tmp_path / "a", drop_image=True)
    with pytest.raises(UserError, match=r"1 of 10 listed image\(s\) not found \(first: 3.png\)"):
        user.load(path, card=cards.parse(DET_CARD))
    path, _ = _coco(tmp_path / "b", category="disk")
    with pytest.raises(UserError, match=r"category 'disk' is not a class the model has.*did you mean 'disc'"):
        user.load(path, card=cards.parse(DET_CARD))
    (tmp_path / "bad.json").write_text('{"images": 3}')
    with pytest.raises(UserError, match="not a COCO JSON file"):
        user.load(tmp_path / "bad.json", card=cards.parse(DET_CARD))


def test_yolo_txt_labels_beside_or_parallel(tmp_path):
    imgs, _, objects = scene(9, 2)
    for i, (im, objs) in enumerate(zip(imgs, objects)):
        sub = "images" if i % 2 else "flat"  # both conventions: labels/ parallel to images/, and txt beside
        (tmp_path / sub).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / sub / f"{i}.jpg"), im)
        lines = [f"{c} {cx / 64} {cy / 64} {w / 64} {h / 64}" for c, cx, cy, w, h in objs]
        txt = (tmp_path / "labels" / f"{i}.txt") if i % 2 else (tmp_path / sub / f"{i}.txt")
        txt.parent.mkdir(exist_ok=True)
        txt.write_text("\n".join(lines))
    data = user.load(tmp_path, card=cards.parse(DET_CARD))
    assert len(data) == 9 and sum(len(b) for b in data.boxes) == sum(len(o) for o in objects)
    (tmp_path / "labels" / "1.txt").write_text("5 0.5 0.5 0.1 0.1\n")
    with pytest.raises(UserError, match=r"1.txt:1: class 5 is not a class the model has \(the card lists 3"):
        user.load(tmp_path, card=cards.parse(DET_CARD))


def test_map50_uses_cocoeval():
    truth = [np.array([[0, 10, 10, 30, 30], [1, 40, 40, 60, 60]]), np.array([[1, 0, 0, 20, 20]])]
    perfect = [np.concatenate([t[:, 1:], np.full((len(t), 1), 0.9), t[:, :1]], 1) for t in truth]
    assert detection_map.map50(perfect, truth) == pytest.approx(1.0)
    shifted = [d + np.array([12, 12, 12, 12, 0, 0]) for d in perfect]  # IoU < 0.5 everywhere
    assert detection_map.map50(shifted, truth) == pytest.approx(0.0)
    out = np.zeros((1, 10, 8), np.float32)  # YOLO layout: cx, cy, w, h, objectness, 3 classes
    out[0, 0] = [20, 20, 20, 20, 0.9, 0.1, 0.8, 0.1]
    out[0, 1] = [21, 20, 20, 20, 0.5, 0.1, 0.8, 0.1]  # suppressed by NMS (same class, IoU > 0.5)
    det = detection_map.decode(out)
    assert det.shape == (1, 6) and det[0, 5] == 1 and det[0, 4] == pytest.approx(0.72)
    assert detection_map.n_classes(out) == 3
    with pytest.raises(UserError, match="YOLO-style output"):
        detection_map.n_classes(np.zeros((1, 10)))


def test_optimize_scores_a_detector_by_map_on_coco_labels(tmp_path):
    """Labels = the FP32 detector's most confident boxes (a model that gets its labels right, as a trained
    one would); the guard scores mAP@0.5 on held-out images, and an over-wide class is refused in one line."""
    torch = pytest.importorskip("torch")
    from edgedeploy.errors import VerdictError
    from edgedeploy.optimize import optimize
    from tests.byo.models import build, to_input

    net = build("yolo")
    imgs = scene(40, 8)[0]
    with torch.no_grad():
        out = net(to_input(imgs)).numpy()
    dets = [detection_map.decode(out[i:i + 1]) for i in range(len(imgs))]
    thr = np.sort(np.concatenate([d[:, 4] for d in dets]))[-2 * len(imgs)]  # the 80 most confident boxes
    (tmp_path / "images").mkdir()
    doc = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(DET_CARD["labels"])]}
    for i, im in enumerate(imgs):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), im)
        doc["images"].append({"id": i, "file_name": f"{i}.png"})
        for x1, y1, x2, y2, s, c in dets[i][dets[i][:, 4] >= thr]:
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i, "category_id": int(c),
                                       "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    card = cards.parse({**DET_CARD, "size": [64, 64]})
    try:
        r = optimize(net, tmp_path / "det.onnx", engine="onnxruntime", precision="fp16", calib=tmp_path / "coco.json",
                     card=card, max_accuracy_drop=5, latency_rounds=1, goal="size")
        assert r.metric.startswith("mAP@0.5") and r.accuracy_before > 0.9 and "boxes" in r.metric_source
    except VerdictError as exc:  # refused (e.g. FP16 not smaller on this build): the figures say mAP
        assert "mAP@0.5" in str(exc)
    doc["categories"].append({"id": 5, "name": "truck"})
    doc["annotations"].append({"id": 999, "image_id": 0, "category_id": 5, "bbox": [1, 1, 5, 5]})
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="category 'truck' is not a class the model has"):
        optimize(net, tmp_path / "x.onnx", engine="onnxruntime", precision="fp16", calib=tmp_path / "coco.json",
                 card=card, latency_rounds=1)
