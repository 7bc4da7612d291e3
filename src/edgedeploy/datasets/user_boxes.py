"""Detection labels in the forms users have: COCO JSON and YOLO txt, as boxes in the model input's pixels.

- COCO JSON (``instances``-style): ``images`` (``id``, ``file_name``), ``annotations``
  (``image_id``, ``category_id``, ``bbox`` = x, y, width, height in pixels), ``categories``
  (``id``, ``name``). Image files are found relative to the JSON's folder (or its ``images/``
  sub-folder), never outside it; a listed image that is missing is an error naming how many and
  the first. Categories map to the card's ``labels`` by name, else to 0..K-1 in id order.
- YOLO txt: beside each image (same stem, ``.txt``) or in the parallel ``labels/`` folder of an
  ``images/`` folder, one object per line: ``class cx cy w h`` normalised to 0..1. An image
  without a txt file shows no object.

Every box goes through the card's geometry (:func:`edgedeploy.cards.map_boxes`), so it lies in
the pixels the model sees; each sample's boxes are ``K x 5``: class, x1, y1, x2, y2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError, did_you_mean


def _inside(root: Path, rel: str, what: str) -> Path:
    p = (root / rel).resolve()
    if not p.is_relative_to(root.resolve()):
        raise UserError(f"{what}: image path {rel!r} leaves {root}; paths must stay inside the labels' folder")
    return p


def _class_map(names_by_id: dict[int, str], card, where: str) -> dict[int, int]:
    labels = list(card.labels) if card is not None and card.labels else []
    if not labels:
        return {cid: i for i, cid in enumerate(sorted(names_by_id))}
    out = {}
    for cid, name in names_by_id.items():
        if name not in labels:
            raise UserError(f"{where}: category {name!r} is not a class the model has (card labels: "
                            f"{', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''}){did_you_mean(name, labels)}; "
                            "remove it or fix the card's labels")
        out[cid] = labels.index(name)
    return out


def coco(path: Path, card, what: str):
    """UserData (tensors + boxes) from a COCO JSON file."""
    from edgedeploy.cards import map_boxes, to_tensor
    from edgedeploy.datasets.user_data import UserData, read_image

    where = f"{what} {path}"
    try:
        doc = json.loads(path.read_text())
        images = {int(im["id"]): str(im["file_name"]) for im in doc["images"]}
        cats = {int(c["id"]): str(c.get("name", c["id"])) for c in doc.get("categories", [])}
        anns = [(int(a["image_id"]), int(a["category_id"]), [float(v) for v in a["bbox"]])
                for a in doc.get("annotations", []) if not a.get("iscrowd", 0)]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{where}: not a COCO JSON file ({type(exc).__name__}: {exc}); expected images (id, "
                        "file_name), annotations (image_id, category_id, bbox) and categories (id, name)") from None
    for _, cid, _ in anns:
        cats.setdefault(cid, str(cid))
    cmap = _class_map(cats, card, where)
    root = path.parent
    found, missing = {}, []
    for iid, name in images.items():
        cands = [_inside(root, name, where), _inside(root / "images", name, where)]
        hit = next((c for c in cands if c.is_file()), None)
        (missing.append(name) if hit is None else found.__setitem__(iid, hit))
    if missing:
        raise UserError(f"{where}: {len(missing)} of {len(images)} listed image(s) not found (first: {missing[0]}); "
                        f"file_name is looked up in {root} and {root / 'images'}")
    by_image: dict[int, list] = {iid: [] for iid in images}
    for iid, cid, (x, y, w, h) in anns:
        if iid not in by_image:
            raise UserError(f"{where}: an annotation names image_id {iid}, which the images list does not have")
        by_image[iid].append((cmap[cid], x, y, x + w, y + h))
    tensors, boxes, skipped = [], [], 0
    for iid in sorted(found):
        img = read_image(found[iid])
        if img is None:
            skipped += 1
            continue
        tensors.append(to_tensor(img, card))
        boxes.append(_as_input(by_image[iid], img.shape[:2], card, map_boxes))
    return UserData(tensors, f"{len(tensors)} images with {sum(len(b) for b in boxes)} boxes from COCO JSON {path} "
                    "through the card's preprocessing", boxes=boxes, classes=tuple(cats[c] for c in sorted(cmap, key=cmap.get)),
                    skipped=skipped)


def _as_input(objs: list, hw, card, map_boxes) -> np.ndarray:
    if not objs:
        return np.zeros((0, 5))
    a = np.asarray(objs, np.float64)
    return np.concatenate([a[:, :1], map_boxes(a[:, 1:], hw, card)], 1)


def yolo_label_file(image: Path) -> Path | None:
    """The YOLO txt for ``image``: beside it, or under the parallel ``labels/`` of an ``images/`` folder."""
    beside = image.with_suffix(".txt")
    if beside.is_file():
        return beside
    parts = list(image.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        other = Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
        if other.is_file():
            return other
    return None


def yolo(root: Path, files: list[Path], card, what: str):
    """UserData (tensors + boxes) from images with YOLO txt labels."""
    from edgedeploy.cards import map_boxes, to_tensor
    from edgedeploy.datasets.user_data import UserData, read_image

    n_classes = len(card.labels) if card is not None and card.labels else None
    tensors, boxes, skipped = [], [], 0
    for f in files:
        img = read_image(f)
        if img is None:
            skipped += 1
            continue
        ih, iw = img.shape[:2]
        objs = []
        lf = yolo_label_file(f)
        for line_no, line in enumerate(lf.read_text().splitlines() if lf else [], 1):
            if not line.strip():
                continue
            try:
                c, cx, cy, w, h = (float(v) for v in line.split()[:5])
            except ValueError:
                raise UserError(f"{what} {lf}:{line_no}: {line.strip()!r} is not 'class cx cy w h' "
                                "(YOLO txt, normalised to 0..1)") from None
            if n_classes is not None and not 0 <= int(c) < n_classes:
                raise UserError(f"{what} {lf}:{line_no}: class {int(c)} is not a class the model has "
                                f"(the card lists {n_classes} labels)")
            objs.append((int(c), (cx - w / 2) * iw, (cy - h / 2) * ih, (cx + w / 2) * iw, (cy + h / 2) * ih))
        tensors.append(to_tensor(img, card))
        boxes.append(_as_input(objs, (ih, iw), card, map_boxes))
    return UserData(tensors, f"{len(tensors)} images with {sum(len(b) for b in boxes)} boxes (YOLO txt labels) from "
                    f"{root} through the card's preprocessing", boxes=boxes, classes=tuple(card.labels or ()),
                    skipped=skipped)
