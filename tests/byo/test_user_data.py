"""The user's own data through the card: folders, class folders, CSV, video, tensors; the disjoint split."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgedeploy import cards
from edgedeploy.datasets import user
from edgedeploy.errors import UserError
from tests.byo.models import CARD, images

CARD_OBJ = cards.parse(CARD)


def _write(folder, imgs, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(imgs):
        cv2.imwrite(str(folder / f"{i:03d}{suffix}"), im)


def test_image_folder_recursive_skips_and_counts_unreadable(tmp_path):
    _write(tmp_path / "a", images(6, 1))
    _write(tmp_path / "a" / "deeper", images(4, 2), ".jpg")
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    d = user.load(tmp_path / "a", card=CARD_OBJ)
    assert len(d) == 10 and d.skipped == 1 and d.labels is None and "1 unreadable" in d.notes[0]
    assert d.tensors[0].shape == (1, 3, 64, 64) and d.tensors[0].dtype == np.float32
    with pytest.raises(UserError, match=r"10 usable sample\(s\) \(1 unreadable file\(s\) skipped\); at least 20"):
        user.load(tmp_path / "a", card=CARD_OBJ, min_samples=20)
    with pytest.raises(UserError, match="needs a model card"):
        user.load(tmp_path / "a", card=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images or tensors found"):
        user.load(tmp_path / "empty", card=CARD_OBJ)


def test_class_folders_and_csv_give_labels(tmp_path):
    for k, name in enumerate(["cat", "dog"]):
        _write(tmp_path / "set" / name, images(5, k))
    plain = user.load(tmp_path / "set", card=CARD_OBJ)  # task none: folders are not classes
    assert plain.labels is None and "sub-folders read as plain images" in plain.notes[0]
    d = user.load(tmp_path / "set", card=cards.parse({**CARD, "task": "classification"}))
    assert d.classes == ("cat", "dog") and sorted(set(d.labels)) == [0, 1] and d.labels.count(1) == 5
    with_labels = cards.parse({**CARD, "labels": ["dog", "cat", "bird"]})
    assert user.load(tmp_path / "set", card=with_labels).labels[0] == 1  # the card's order wins
    with pytest.raises(UserError, match=r"class\(es\) 'dog' are not among the card's labels"):
        user.load(tmp_path / "set", card=cards.parse({**CARD, "labels": ["cat", "bird"]}))
    rows = [f"set/{n}/{i:03d}.png,{n}" for n in ("cat", "dog") for i in range(5)]
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    c = user.load(tmp_path / "labels.csv", card=CARD_OBJ)  # a CSV is labelled by what it is
    assert len(c) == 10 and c.labels == d.labels
    (tmp_path / "evil.csv").write_text("../outside.png,cat\n")
    with pytest.raises(UserError, match="leaves the CSV's folder"):
        user.load(tmp_path / "evil.csv", card=CARD_OBJ)


def test_video_and_tensors(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for im in images(30, 3):
        w.write(im)
    w.release()
    v = user.load(path, card=CARD_OBJ, video_step=3)
    assert len(v) == 10 and v.tensors[0].shape == (1, 3, 64, 64)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", a=rng.standard_normal((3, 8, 8)), b=rng.standard_normal((1, 3, 8, 8)))
    np.save(tmp_path / "stack.npy", rng.standard_normal((9, 3, 8, 8)))
    assert len(user.load(tmp_path / "t.npz", min_samples=2)) == 2
    assert [t.shape for t in user.load(tmp_path / "stack.npy").tensors] == [(1, 3, 8, 8)] * 9


def test_split_is_disjoint_and_fixed(tmp_path):
    data = user.UserData([np.full((1, 1), i, np.float32) for i in range(40)], "forty", labels=list(range(40)))
    cal, ev, statement = user.split(data, 10)
    ids = lambda d: {int(t[0, 0]) for t in d.tensors}  # noqa: E731
    assert len(cal) == 10 and len(ev) == 30 and not ids(cal) & ids(ev)
    assert ev.labels == sorted(ids(ev)) and "split by seed 0" in statement
    assert ids(user.split(data, 10)[0]) == ids(cal)  # same seed, same split
    with pytest.raises(UserError, match="cannot give both calibration and at least 8 held-out"):
        user.split(user.UserData(data.tensors[:8], "eight"), 4)


def test_near_ties_are_not_decisions():
    """Agreement with FP32 counts only decisions FP32 made with a margin (5% of the output range)."""
    from edgedeploy.optimize.guard import decisive

    ref = np.array([[4.0, 3.99, -4.0, -4.0], [4.0, 1.0, -4.0, -4.0]])
    assert decisive(ref, -1).tolist() == [False, True]
    seg = np.stack([ref.T[:, :, None]] * 2, -1)[None]  # N x C x H x W
    assert decisive(seg, 1).shape == (1, 2, 1, 2)


def test_test_models_depend_on_their_inputs():
    """The test models' last layers are fitted to the generated task: confident, input-dependent decisions."""
    torch = pytest.importorskip("torch")
    from tests.byo.models import build, colour_labels, images, to_input

    imgs = images(64, 99)
    with torch.no_grad():
        logits = build("resnet")(to_input(imgs)).numpy()
    top = np.sort(logits, -1)
    assert (logits.argmax(-1) == colour_labels(imgs)).mean() > 0.6
    assert np.median(top[:, -1] - top[:, -2]) > 1.0
