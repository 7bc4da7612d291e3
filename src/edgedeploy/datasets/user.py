"""The user's own data, in the forms they already have, through the model card's preprocessing.

Accepted ``path`` forms (:func:`load`):

- a folder of images, searched recursively (any format OpenCV or Pillow reads); files that
  cannot be read are skipped and counted;
- an ImageNet-style labelled folder: every image sits in a class sub-folder (``root/cat/1.jpg``)
  and the card's task classifies (or it has labels); class names map to the card's ``labels`` (or, without labels, to sorted folder names / integers);
- detection labels: a COCO JSON file, or images with YOLO txt labels (a folder, when the card's
  task detects): see :mod:`edgedeploy.datasets.user_boxes`;
- a CSV file of ``path,label`` rows (paths relative to the CSV's folder, never outside it);
- a video (every ``video_step``-th frame);
- ``.npy`` / ``.npz`` tensors, fed as they are (a folder of them, or one file: N samples stacked).

:func:`split` divides one set into calibration and held-out evaluation samples, disjoint, by a
fixed seed (:data:`SPLIT_SEED`), so the accuracy guard never scores on what INT8 was calibrated on.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from edgedeploy.datasets.user_data import UserData, read_image
from edgedeploy.errors import UserError
from edgedeploy.vocab import Task

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
TENSOR_SUFFIXES = (".npy", ".npz")
SPLIT_SEED = 0
CLASSIFYING = (Task.CLASSIFICATION, Task.CLS, Task.ORIENTATION)
MIN_SAMPLES = 8


def load(path: str | Path, *, card=None, limit: int | None = None, min_samples: int = MIN_SAMPLES,
         video_step: int = 10, what: str = "data") -> UserData:
    """Samples from ``path`` (see the module doc); images go through ``card`` (a resolved
    :class:`~edgedeploy.cards.ModelCard`). Fewer than ``min_samples`` readable samples is a :class:`UserError`."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{what} {path}: not found; expected an image folder (optionally one sub-folder per class), "
                        "a CSV of path,label, a video, or .npy/.npz tensors")
    suffix = p.suffix.lower()
    if p.is_file() and suffix == ".csv":
        data = _csv(p, card, what)
    elif p.is_file() and suffix == ".json":
        from edgedeploy.datasets import user_boxes

        data = user_boxes.coco(p, _need_card(card, what, p), what)
    elif p.is_file() and suffix in VIDEO_SUFFIXES:
        data = _video(p, card, video_step, limit, what)
    elif p.is_file() and suffix in TENSOR_SUFFIXES:
        data = UserData(_tensors(p), f"tensors from {p}")
    elif p.is_dir():
        data = _folder(p, card, what)
    else:
        raise UserError(f"{what} {path}: unsupported file type {suffix or 'none'!r}; expected a folder, .csv, "
                        f"a COCO JSON file, a video ({', '.join(VIDEO_SUFFIXES)}) or .npy/.npz")
    if limit is not None and len(data) > limit:
        data = data.take(range(limit))
    for i, t in enumerate(data.tensors):
        if np.issubdtype(t.dtype, np.floating) and not np.isfinite(t).all():  # quantizers assert on them
            raise UserError(f"{what} {path}: sample {i} holds NaN or infinity; give finite tensors")
    if len(data) < min_samples:
        skipped = f" ({data.skipped} unreadable file(s) skipped)" if data.skipped else ""
        raise UserError(f"{what} {path}: {len(data)} usable sample(s){skipped}; at least {min_samples} are needed — "
                        "add images (any format OpenCV/Pillow read) or tensors")
    if data.skipped:
        data.notes.append(f"{data.skipped} unreadable file(s) skipped in {path}")
        log.warning("%s: %d unreadable file(s) skipped", path, data.skipped)
    return data


def _need_card(card, what: str, path: Path):
    if card is None:
        raise UserError(f"{what} {path} holds images; turning them into the model's input needs a model card "
                        "(size, color, mean/std, resize): write one with `edgedeploy card init MODEL` and pass it "
                        "(or put MODEL.card.yaml beside the model), or give .npy tensors")
    return card


def _images(files: list[Path], card, what: str, root: Path) -> tuple[list[np.ndarray], list[int], int]:
    from edgedeploy.cards import to_tensor

    _need_card(card, what, root)
    out, kept, skipped = [], [], 0
    for i, f in enumerate(files):
        img = read_image(f)
        if img is None:
            skipped += 1
            continue
        out.append(to_tensor(img, card))
        kept.append(i)
    return out, kept, skipped


def _folder(root: Path, card, what: str) -> UserData:
    files = sorted(f for f in root.rglob("*") if f.is_file() and not f.name.startswith("."))
    tensors = [f for f in files if f.suffix.lower() in TENSOR_SUFFIXES]
    if tensors and len(tensors) == len([f for f in files if f.suffix.lower() not in (".txt", ".json", ".csv")]):
        return UserData([t for f in tensors for t in _tensors(f)], f"{len(tensors)} tensor file(s) from {root}")
    candidates = [f for f in files if f.suffix.lower() not in (".txt", ".json", ".csv", ".yaml", ".md")]
    if not candidates:
        raise UserError(f"{what} {root}: no images or tensors found (searched recursively)")
    if card is not None and card.task in (Task.DETECTION, Task.DET):
        from edgedeploy.datasets import user_boxes

        if any(user_boxes.yolo_label_file(f) for f in candidates):  # YOLO txt labels beside (or parallel to) them
            return user_boxes.yolo(root, candidates, _need_card(card, what, root), what)
    parents = {f.parent for f in candidates}
    class_folders = all(p.parent == root for p in parents) and len(parents) >= 2
    # Sub-folders are classes only when the card says the model classifies (a task or labels): an
    # unlabelled set may be organised in folders too.
    labelled = class_folders and card is not None and (card.labels or card.task in CLASSIFYING)
    imgs, kept, skipped = _images(candidates, card, what, root)
    if not labelled:
        notes = [f"{root}: sub-folders read as plain images (the card's task is {card.task.value}; set task: "
                 "classification to use them as class labels)"] if class_folders else []
        return UserData(imgs, f"{len(imgs)} images from {root} (recursive) through the card's preprocessing",
                        skipped=skipped, notes=notes)
    names = [candidates[i].parent.name for i in kept]
    classes, labels = _label_ids(names, card, f"{what} {root}")
    return UserData(imgs, f"{len(imgs)} labelled images from {root} ({len(set(names))} class folders) through the "
                    "card's preprocessing", labels=labels, classes=classes, skipped=skipped)


def _label_ids(names: list[str], card, where: str) -> tuple[tuple[str, ...], list[int]]:
    """Class names → output indices: the card's labels if it has them, else integers, else sorted names."""
    known = tuple(card.labels) if card is not None and card.labels else ()
    if known:
        index = {n: i for i, n in enumerate(known)}
        missing = sorted(set(names) - set(index))
        if missing:
            from edgedeploy.errors import did_you_mean

            raise UserError(f"{where}: class(es) {', '.join(map(repr, missing[:5]))} are not among the card's labels"
                            f"{did_you_mean(missing[0], known)} ({', '.join(known)}); rename the folders or fix labels")
        return known, [index[n] for n in names]
    uniq = sorted(set(names))
    if all(n.isdigit() for n in uniq):
        return tuple(uniq), [int(n) for n in names]
    index = {n: i for i, n in enumerate(uniq)}
    return tuple(uniq), [index[n] for n in names]


def _csv(path: Path, card, what: str) -> UserData:
    root = path.parent.resolve()
    files, names = [], []
    with open(path, newline="") as f:
        for row_no, row in enumerate(csv.reader(f), 1):
            if not row or (row_no == 1 and row[0].strip().lower() in ("path", "file", "image", "filename")):
                continue
            if len(row) < 2:
                raise UserError(f"{what} {path}: row {row_no} has {len(row)} column(s); expected path,label")
            p = (root / row[0].strip()).resolve()
            if not p.is_relative_to(root):
                raise UserError(f"{what} {path}: row {row_no} path {row[0]!r} leaves the CSV's folder; "
                                "paths must stay inside it")
            files.append(p)
            names.append(row[1].strip())
    imgs, kept, skipped = _images(files, card, what, path)
    classes, labels = _label_ids([names[i] for i in kept], card, f"{what} {path}")
    return UserData(imgs, f"{len(imgs)} labelled images from {path} through the card's preprocessing",
                    labels=labels, classes=classes, skipped=skipped)


def _video(path: Path, card, step: int, limit: int | None, what: str) -> UserData:
    import cv2

    from edgedeploy.cards import to_tensor

    _need_card(card, what, path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"{what} {path}: OpenCV cannot open this video; convert it to MP4 (H.264) or give frames")
    out, i = [], 0
    try:
        while limit is None or len(out) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                out.append(to_tensor(frame, card))
            i += 1
    finally:
        cap.release()
    return UserData(out, f"{len(out)} frames (every {step}th) of {path} through the card's preprocessing")


def _tensors(path: Path) -> list[np.ndarray]:
    """Samples in a .npy (one sample, or N stacked along axis 0) or .npz (one per array) file."""
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = [z[k] for k in z.files]
        else:
            arrays = [np.load(path, allow_pickle=False)]
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable numpy file ({exc}); save tensors with numpy.save/savez") from None
    # rank <= 3: one sample without its batch axis; rank 4: N samples stacked (1 x C x H x W each)
    return [t for a in arrays for t in ([a[None]] if a.ndim <= 3 else [a[i:i + 1] for i in range(len(a))])]


def split(data: UserData, n_calib: int, *, seed: int = SPLIT_SEED, max_eval: int | None = None,
          min_eval: int = MIN_SAMPLES) -> tuple[UserData, UserData, str]:
    """(calibration, held-out, statement): disjoint samples of ``data``, shuffled by ``seed``."""
    n = len(data)
    n_calib = min(n_calib, n - min_eval)
    if n_calib < 1:
        raise UserError(f"{data.source}: {n} samples cannot give both calibration and at least {min_eval} held-out "
                        "evaluation samples; add data")
    order = np.random.default_rng(seed).permutation(n)
    held = order[n_calib:] if max_eval is None else order[n_calib:n_calib + max_eval]
    calib, ev = data.take(sorted(order[:n_calib])), data.take(sorted(held))
    return calib, ev, (f"{n_calib} calibration / {len(ev)} held-out evaluation samples, disjoint, split by seed {seed} "
                       f"from {data.source}")
