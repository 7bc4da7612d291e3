"""Model cards: schema, did-you-mean, contradictions with the graph, drafts, zoo cards, preprocessing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgedeploy import cards, zoo
from edgedeploy.errors import UserError
from edgedeploy.vocab import Task


def _model(path, shape):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_unknown_key_gets_a_suggestion_and_bad_values_one_line():
    with pytest.raises(UserError, match=r"unknown key 'colour' \(did you mean 'color'\?\)"):
        cards.parse({"colour": "RGB"})
    with pytest.raises(UserError, match=r"mean has 3 values; color GRAY has 1 channel"):
        cards.parse({"color": "gray", "mean": [0.5, 0.5, 0.5]})
    with pytest.raises(UserError, match=r"resize: .*given 'squash'"):
        cards.parse({"resize": "squash"})
    c = cards.parse({"task": "detection", "output_format": "yolo", "labels": ["a", "b"], "layout": "nhwc"})
    assert c.task is Task.DETECTION and c.layout is cards.Layout.NHWC and c.labels == ("a", "b")


def test_card_that_contradicts_the_graph_is_one_clear_line(tmp_path):
    gray = _model(tmp_path / "gray.onnx", [1, 1, 32, 32])
    with pytest.raises(UserError, match=r"color RGB means 3 channel\(s\) but the model's input 1x1x32x32 has 1 .*set color GRAY"):
        cards.resolve(cards.parse({}), gray)
    fixed = _model(tmp_path / "fixed.onnx", [1, 3, 32, 48])
    with pytest.raises(UserError, match=r"size \[64, 64\] but the model's input 1x3x32x48 has a fixed height of 32 "
                                        r"— set size to \[32, 48\]"):
        cards.resolve(cards.parse({"size": [64, 64]}), fixed)
    assert cards.resolve(cards.parse({}), fixed).size == (32, 48)  # static size filled in from the graph
    dyn = _model(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    with pytest.raises(UserError, match="dynamic height/width; the card must give size"):
        cards.resolve(cards.parse({}), dyn)
    nhwc = _model(tmp_path / "nhwc.onnx", [1, 32, 32, 3])
    with pytest.raises(UserError, match="or layout: NHWC"):
        cards.resolve(cards.parse({}), nhwc)
    with pytest.raises(UserError, match=r"card input 'images' is not an input"):
        cards.resolve(cards.parse({"input": "images"}), fixed)


def test_card_init_drafts_from_the_graph_and_the_draft_loads(tmp_path):
    from edgedeploy.cli import main

    src = _model(tmp_path / "net.onnx", [1, 32, 32, 3])
    assert main(["card", "init", str(src)]) == 0
    text = (tmp_path / "net.card.yaml").read_text()
    assert "input: x" in text and "layout: NHWC" in text and "size: [32, 32]" in text and text.count("#") > 5
    card = cards.find(src)  # found beside the model
    assert cards.resolve(card, src).layout is cards.Layout.NHWC
    assert main(["card", "init", str(src)]) == 2  # exists: not overwritten without --force
    assert main(["card", "check", str(src), "--json"]) == 0
    dyn = _model(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    assert main(["card", "init", str(dyn)]) == 0
    assert "REQUIRED" in (tmp_path / "dyn.card.yaml").read_text()


def test_zoo_preprocessing_is_expressible_as_a_card():
    for e in zoo.ENTRIES:
        c = cards.from_zoo(e)
        assert c.size == tuple(e.example_shape[2:]) and c.mean == e.preprocess.mean and c.color.value == "BGR"
    assert cards.from_zoo(zoo.entry("pplcnet-orientation")).labels == ("0", "90", "180", "270")


def test_preprocessing_modes():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :, 2] = 200  # red in BGR
    base = {"size": [20, 20], "scale": 1.0, "mean": [0.0], "std": [1.0]}
    lb = cards.to_tensor(img, cards.parse({**base, "resize": "letterbox", "pad_value": 7}))
    assert lb.shape == (1, 3, 20, 20) and lb[0, 0, 0, 0] == 7 and lb[0, 0, 10, 10] == 200  # RGB: red first
    crop = cards.to_tensor(img, cards.parse({**base, "resize": "crop", "color": "BGR"}))
    assert crop[0, 2].min() == 200 and crop[0, 0].max() == 0  # no padding, BGR kept
    gray = cards.to_tensor(img, cards.parse({**base, "color": "GRAY", "layout": "NHWC"}))
    assert gray.shape == (1, 20, 20, 1)


def test_zoo_card_preprocesses_exactly_like_the_zoo_task(tiny_onnx):
    """The orientation classifier's own preprocessing (short side 256, area, centre 224) and its card agree."""
    from edgedeploy import engines
    from edgedeploy.tasks.orientation import OrientationClassifier

    entry = zoo.entry("pplcnet-orientation")
    img = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    with engines.load(str(tiny_onnx)) as s:
        want = OrientationClassifier(s, labels=entry.labels, preprocess=entry.preprocess).preprocess(img)
    np.testing.assert_allclose(cards.to_tensor(img, cards.from_zoo(entry)), want, atol=1e-5)
