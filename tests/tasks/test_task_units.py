"""Unit tests of the task code without the zoo: decoding, DB post-processing, PicoDet decoding,
output checks, and the detector end to end on a tiny ONNX model built here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgedeploy.engines.base import TensorSpec
from edgedeploy.errors import UserError
from edgedeploy.tasks import (
    CTCDecoder, DetOptions, LayoutDetector, OCRSystem, TextDetector, TextRecognizer, build, check_outputs,
    crop_quad, db_postprocess, upright,
)
from edgedeploy.tasks.det import order_quads, reading_order
from edgedeploy.tasks.rec import RecOptions
from edgedeploy.zoo import BY_NAME

F32 = np.dtype(np.float32)


class FakeSession:
    """Just enough of a Session: specs, and ``run`` returning canned outputs."""

    def __init__(self, inputs, outputs, results=None):
        self.inputs = [TensorSpec(f"in{i}", F32, s) for i, s in enumerate(inputs)]
        self.outputs = [TensorSpec(f"out{i}", F32, s) for i, s in enumerate(outputs)]
        self.results = results
        self.fed = None

    def run(self, feeds):
        self.fed = feeds
        return {o.name: r for o, r in zip(self.outputs, self.results)}


# --- CTC -------------------------------------------------------------------------------------

def _one_hot(seq, classes, p=0.9):
    probs = np.full((len(seq), classes), (1 - p) / (classes - 1), np.float32)
    probs[np.arange(len(seq)), seq] = p
    return probs


def test_ctc_collapses_repeats_and_drops_blanks():
    dec = CTCDecoder.from_dictionary(["a", "b", "l"])  # classes: blank, a, b, l, space
    assert len(dec) == 5
    # "a a _ b _ _ l l _ l space b" → "abll b": a blank separates the two l's, repeats collapse.
    seqs = np.stack([_one_hot([1, 1, 0, 2, 0, 0, 3, 3, 0, 3, 4, 2], 5),
                     _one_hot([0] * 12, 5)])
    texts, scores = dec(seqs)
    assert texts == ["abll b", ""]
    assert scores[0] == pytest.approx(0.9, abs=1e-6)
    assert scores[1] == 0.0


def test_ctc_rejects_a_dictionary_of_the_wrong_size():
    with pytest.raises(UserError, match="classes"):
        CTCDecoder.from_dictionary(["a"])(np.zeros((1, 4, 7), np.float32))


def test_rec_checks_dictionary_against_model_classes():
    session = FakeSession([(None, 3, 48, None)], [(None, None, 10)])
    with pytest.raises(UserError, match="10 classes"):
        TextRecognizer(session, characters=list("abc"))


def test_rec_restores_input_order_across_batches():
    # 8 crops of different widths are sorted into two batches by aspect ratio; results must
    # come back in the caller's order. Crop i is filled with grey 20*(i+1), and the fake
    # model "reads" that grey as class i+1, i.e. character str(i).
    widths = [300, 60, 200, 90, 400, 30, 150, 120]
    crops = [np.full((30, w, 3), 20 * (i + 1), np.uint8) for i, w in enumerate(widths)]

    class GreyReader(FakeSession):
        def run(self, feeds):
            batch = next(iter(feeds.values()))
            grey = (batch[:, 0, 0, 0] + 1) / 2 * 255  # undo (x/255 - 0.5) / 0.5
            out = np.zeros((len(batch), 1, 10), np.float32)
            out[np.arange(len(batch)), 0, np.rint(grey / 20).astype(int)] = 1
            return {self.outputs[0].name: out}

    session = GreyReader([(None, 3, 48, None)], [(None, None, 10)])
    rec = TextRecognizer(session, characters=[str(i) for i in range(8)])
    result = rec(crops)
    assert result.texts == [str(i) for i in range(8)]
    assert result.scores == [1.0] * 8


def test_rec_width_step_rounds_each_batch_width_up():
    session = FakeSession([(None, 3, 48, None)], [(None, None, 10)])
    rec = TextRecognizer(session, characters=list("abcdefgh"),
                         options=RecOptions(batch_size=1, width_step=32, min_width=48))
    crops = [np.zeros((48, w, 3), np.uint8) for w in (40, 100, 129)]
    widths = [batch.shape[3] for _, batch in rec.preprocess(crops)]
    assert widths == [64, 128, 160]  # 48 (min) → 64, 100 → 128, 129 → 160
    with pytest.raises(UserError, match="width_step"):
        RecOptions(width_step=0)


# --- DB post-processing ------------------------------------------------------------------------

def test_db_postprocess_on_a_synthetic_map():
    prob = np.zeros((200, 320), np.float32)
    prob[40:60, 30:230] = 0.9  # a line: 200 x 20 map pixels
    prob[120:135, 50:110] = 0.8  # another, lower
    prob[170:180, 200:300] = 0.4  # above thresh (0.3) but below box_thresh (0.5): dropped
    prob[10:12, 300:302] = 0.99  # too small
    boxes, scores = db_postprocess(prob, (400, 640), DetOptions())  # image is 2x the map
    assert boxes.shape == (2, 4, 2) and boxes.dtype == np.float32
    # Scored over the dilated rectangle, border pixels included: a little under the peak.
    assert 0.8 < scores[0] <= 0.9 and 0.7 < scores[1] <= 0.8
    for box, (x0, y0, x1, y1) in zip(boxes, [(30, 40, 230, 60), (50, 120, 110, 135)]):
        # The region after the 2x2 dilation is one pixel larger; DB then grows it by
        # d = area * 1.6 / perimeter on each side.
        w, h = x1 - x0 + 1, y1 - y0 + 1
        d = w * h * 1.6 / (2 * (w + h))
        want = np.array([[x0 - d, y0 - d], [x1 + d, y0 - d], [x1 + d, y1 + d], [x0 - d, y1 + d]]) * 2
        np.testing.assert_allclose(box, want, atol=2.5)


def test_db_postprocess_empty_map():
    boxes, scores = db_postprocess(np.zeros((64, 64), np.float32), (64, 64))
    assert boxes.shape == (0, 4, 2) and scores.shape == (0,)


def test_quads_are_ordered_and_sorted_in_reading_order():
    q = np.array([[[10, 0], [0, 0], [0, 5], [10, 5]]], np.float32)  # tr, tl, bl, br
    np.testing.assert_array_equal(order_quads(q)[0], [[0, 0], [10, 0], [10, 5], [0, 5]])
    boxes = np.array([[[100, 52]] * 4, [[5, 50]] * 4, [[7, 10]] * 4, [[50, 90]] * 4], np.float32)
    # y 52 and 50 are one line (less than 10 px apart): left to right within it.
    assert reading_order(boxes).tolist() == [2, 1, 0, 3]


# --- det end to end on a tiny model built in code ---------------------------------------------

@pytest.fixture(scope="module")
def ink_session(tmp_path_factory):
    """A 'DB model' whose probability is the darkness of the pixel: 0.5 - mean(x)/2."""
    import onnx
    from onnx import TensorProto, helper

    from edgedeploy import engines

    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["m", "half"], ["h"]),
        helper.make_node("Sub", ["half", "h"], ["prob"]),
    ]
    graph = helper.make_graph(
        nodes, "ink",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny") / "ink.onnx"
    onnx.save(model, path)
    return engines.load(path)


def test_detector_maps_boxes_back_to_the_original_image(ink_session):
    img = np.full((300, 500, 3), 255, np.uint8)  # not a multiple of 32: resized to 1216x736
    rects = [(40, 30, 240, 50), (60, 120, 400, 140), (300, 220, 460, 236)]
    for x0, y0, x1, y1 in rects:
        img[y0:y1, x0:x1] = 0
    det = TextDetector(ink_session, preprocess=BY_NAME["ppocrv6-det"].preprocess)
    result = det(img)
    assert len(result) == 3
    assert result.timings.model_ms > 0
    for quad, (x0, y0, x1, y1) in zip(result.boxes, rects):
        # Grown by DB's unclip; the rectangle must be inside and the centre kept.
        assert quad[:, 0].min() < x0 and quad[:, 0].max() > x1 - 1
        assert quad[:, 1].min() < y0 and quad[:, 1].max() > y1 - 1
        np.testing.assert_allclose(quad.mean(0), [(x0 + x1) / 2, (y0 + y1) / 2], atol=2)


def test_detector_input_sizes():
    det = TextDetector(FakeSession([(None, 3, None, None)], [(None, 1, None, None)]),
                       preprocess=BY_NAME["ppocrv6-det"].preprocess)
    assert det.input_size(640, 640) == (736, 736)
    assert det.input_size(300, 500) == (736, 1216)
    assert det.input_size(4000, 3000) == (1984, 1504)  # long side capped at 2000, then rounded to 32
    det = TextDetector(det.session, preprocess=BY_NAME["ppocrv6-det"].preprocess,
                       options=DetOptions(limit_side_len=960, limit_type="max"))
    assert det.input_size(1920, 1080) == (960, 544)
    with pytest.raises(UserError, match="limit_type"):
        DetOptions(limit_type="mean")


# --- layout decoding ----------------------------------------------------------------------------

def test_layout_decodes_distribution_boxes_and_nms():
    labels = ["text", "title"]
    cells = [100 * 76, 50 * 38, 25 * 19, 13 * 10]  # 800x608 at strides 8, 16, 32, 64
    scores = [np.zeros((1, n, 2), np.float32) for n in cells]
    dists = [np.full((1, n, 32), -20.0, np.float32) for n in cells]
    # Stride 16, cell (row 10, col 5): centre (88, 168). Distances in bins: l=2, t=1, r=3, b=0.5.
    cell = 10 * 38 + 5
    scores[1][0, cell, 0] = 0.9
    for side, bins in enumerate([2, 1, 3, None]):
        if bins is None:  # half way between bins 0 and 1
            dists[1][0, cell, side * 8:side * 8 + 2] = 0.0
        else:
            dists[1][0, cell, side * 8 + bins] = 0.0
    # A weaker duplicate next door (same class, heavy overlap) must be suppressed,
    # an overlapping one of another class kept.
    for other, cls, s in [(cell + 1, 0, 0.8), (cell + 1, 1, 0.7)]:
        scores[1][0, other, cls] = s
        dists[1][0, other, :] = dists[1][0, cell, :]
    session = FakeSession([(1, 3, 800, 608)], [(1, n, 2) for n in cells] + [(1, n, 32) for n in cells],
                          scores + dists)
    layout = LayoutDetector(session, labels=labels)
    result = layout(np.zeros((400, 304, 3), np.uint8))  # half the input size: boxes halve
    assert result.labels == ["text", "title"]
    cx, cy = 5 * 16 + 8, 10 * 16 + 8
    want = np.array([cx - 2 * 16, cy - 1 * 16, cx + 3 * 16, cy + 0.5 * 16]) / 2
    np.testing.assert_allclose(result.boxes[0], want, atol=1e-3)
    assert result.scores.tolist() == pytest.approx([0.9, 0.7])


# --- output checks, build -----------------------------------------------------------------------

@pytest.mark.parametrize("task, outputs", [
    ("det", [(None, None, 18710)]),
    ("det", [(1, 2, None, None)]),
    ("rec", [(None, 1, None, None)]),
    ("cls", [(None, 40, 2)]),
    ("layout", [(1, 100, 10)]),
])
def test_check_outputs_rejects_the_wrong_model(task, outputs):
    session = FakeSession([(None, 3, None, None)], outputs)
    with pytest.raises(UserError, match=f"model m has outputs out0 float32 .*; task '{task}' expects"):
        check_outputs(task, session, "m")


def test_build_names_unknown_tasks_and_options():
    session = FakeSession([(None, 3, None, None)], [(None, 1, None, None)])
    with pytest.raises(UserError, match="did you mean 'det'"):
        build("dte", session, BY_NAME["ppocrv6-det"])
    with pytest.raises(UserError, match="did you mean 'unclip_ratio'"):
        build("det", session, BY_NAME["ppocrv6-det"], unclip_ration=2.0)
    with pytest.raises(UserError, match="is a 'det' model"):
        build("cls", session, BY_NAME["ppocrv6-det"])
    det = build("det", session, BY_NAME["ppocrv6-det"], box_thresh=0.6)
    assert det.options.box_thresh == 0.6


def test_images_must_be_uint8():
    det = TextDetector(FakeSession([(None, 3, None, None)], [(None, 1, None, None)]),
                       preprocess=BY_NAME["ppocrv6-det"].preprocess)
    with pytest.raises(UserError, match="uint8"):
        det(np.zeros((32, 32, 3), np.float32))


# --- geometry helpers -----------------------------------------------------------------------------

def test_crop_quad_cuts_and_turns_tall_crops():
    img = np.zeros((100, 100, 3), np.uint8)
    img[10:20, 10:60] = 255
    crop = crop_quad(img, np.array([[10, 10], [60, 10], [60, 20], [10, 20]], np.float32))
    assert crop.shape == (10, 50, 3) and crop.mean() > 240
    tall = crop_quad(img, np.array([[0, 0], [10, 0], [10, 40], [0, 40]], np.float32))
    assert tall.shape == (10, 40, 3)


def test_upright_undoes_clockwise_rotations():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for label, rot in [("90", cv2.ROTATE_90_CLOCKWISE), ("180", cv2.ROTATE_180),
                       ("270", cv2.ROTATE_90_COUNTERCLOCKWISE)]:
        np.testing.assert_array_equal(upright(cv2.rotate(img, rot), label), img)
    assert upright(img, "0") is img


def test_ocr_pads_a_single_line_image():
    seen = []

    class Recorder:
        def __call__(self, img):
            seen.append(img.shape)
            from edgedeploy.tasks import DetResult
            return DetResult(np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32))

    class NoRec:
        def __call__(self, crops):
            from edgedeploy.tasks import RecResult
            return RecResult([], [])

    result = OCRSystem(Recorder(), None, NoRec())(np.full((24, 400, 3), 255, np.uint8))
    assert len(result) == 0
    assert seen == [(24 + 2 * 38, 400, 3)]  # padded to 2 x max(400/8, 30) = 100 high
