"""Start to finish on models edgedeploy has never seen: card → optimize from the user's images."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")

from edgedeploy import cards  # noqa: E402
from edgedeploy.errors import VerdictError  # noqa: E402
from edgedeploy.optimize import optimize, report_path, source_path  # noqa: E402
from tests.byo.models import CARD, build, images, to_input  # noqa: E402


def _folder(path, imgs, labels=None):
    for i, im in enumerate(imgs):
        d = path / str(labels[i]) if labels is not None else path
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i:03d}.png"), im)
    return path


def test_detector_box_head_is_found_and_kept_in_float(tmp_path):
    """Plain INT8 ruins the YOLO-style head (scores quantized at the pixels' scale in one Concat):
    the guard sees it on held-out images, the ranking finds the Concat, and only the fewest nodes go back to float."""
    net = build("yolo")
    data = _folder(tmp_path / "imgs", images(64, 3))
    out = tmp_path / "det.int8.onnx"
    try:
        r = optimize(net, out, engine="onnxruntime", calib=data, card=cards.parse(CARD), max_accuracy_drop=1.0,
                     latency_rounds=1, goal="size")
    except VerdictError as exc:  # refusing is allowed; shipping it broken is not
        assert not out.exists() and "nothing was written" in str(exc)
        return
    trial = r.trials[0]
    assert 100 * (r.accuracy_before - trial.steps[0]["accuracy"]) > 1.0  # all-INT8 is over budget
    assert r.accuracy_drop_points <= 1.0 and r.float_layers and r.float_layers[0]["op"] == "Concat"
    kept = len(r.float_layers)  # the fewest: every count tried below it was over budget
    assert all(100 * (r.accuracy_before - s["accuracy"]) > 1.0 for s in trial.steps if s["float_layers"] < kept)
    assert r.metric.startswith("output fidelity")
    assert "held-out" in r.metric_source and "split by seed 0" in r.calibration
    assert source_path(out).exists() and report_path(out).exists()  # the FP32 export is kept beside it, stated


def test_cli_from_torchscript_with_labelled_folder(tmp_path, capsys):
    from edgedeploy.cli import main

    net = build("resnet")
    imgs = images(48, 11)
    with torch.no_grad():
        labels = net(to_input(imgs)).argmax(-1).numpy()  # labels the FP32 model gets right: accuracy 100% before
    data = _folder(tmp_path / "labelled", imgs, labels)
    torch.jit.trace(net, to_input(imgs[:1])).save(str(tmp_path / "net.pt"))
    import yaml

    (tmp_path / "net.card.yaml").write_text(yaml.safe_dump({**CARD, "task": "classification",
                                                             "labels": [str(i) for i in range(4)]}))
    out = tmp_path / "net.int8.onnx"
    code = main(["optimize", str(tmp_path / "net.pt"), "-o", str(out), "--calib", str(data), "--engine", "onnxruntime",
                 "--goal", "size", "--rounds", "1", "--max-accuracy-drop", "2"])
    rep = json.loads(report_path(out).read_text())
    err = capsys.readouterr().err  # off a terminal: one line per phase instead of a bar
    assert "optimize: reading" in err and "optimize: latency round 1/1" in err
    assert code == 0 and rep["metric"] == "top-1 accuracy" and rep["accuracy_before"] == 1.0
    assert rep["accuracy_drop_points"] <= 2 and rep["accuracy_ci_points"] > 0 and rep["size_ratio"] > 2
    assert "16 calibration / 32 held-out" in rep["calibration"]
    # the exported FP32 model can be carded and reloaded
    assert main(["card", "init", str(source_path(out))]) == 0
    assert cards.find(source_path(out)).size == (64, 64)
    bad = _folder(tmp_path / "strangers", images(16, 1), np.array(["cat", "dog"] * 8))
    assert main(["optimize", str(tmp_path / "net.pt"), "-o", str(tmp_path / "x.onnx"), "--calib", str(data),
                 "--data", str(bad), "--engine", "onnxruntime"]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_deploy_yaml_takes_card_and_data(tmp_path):
    """The deploy YAML has keys for the card and the calibration/evaluation data, validated like the rest."""
    from edgedeploy.deploy.config import DeploymentConfig
    from edgedeploy.errors import UserError

    cfg = DeploymentConfig(model="net.onnx", card="net.card.yaml",
                           evaluation={"calibration": "images/", "data": "labelled/", "max_accuracy_drop": "1%"})
    assert cfg.card == "net.card.yaml" and cfg.evaluation.calibration == "images/"
    assert 100 * cfg.evaluation.max_accuracy_drop == pytest.approx(1.0)  # the fraction, converted once to points
    import yaml

    from edgedeploy.deploy.config import load

    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"model": "net.onnx", "evaluation": {"calibraton": "x"}}))
    with pytest.raises(UserError, match="calibraton"):
        load(tmp_path / "d.yaml", check_model=False)


def test_segmentation_card_scores_pixel_agreement(tmp_path):
    net = build("unet")
    data = _folder(tmp_path / "imgs", images(24, 4))
    r = optimize(net, tmp_path / "seg.onnx", engine="onnxruntime", precision="fp16", calib=data,
                 card=cards.parse({**CARD, "task": "segmentation"}), max_accuracy_drop=5, latency_rounds=1,
                 goal="size")
    assert r.metric.startswith("pixel agreement with FP32") and r.accuracy_before == 1.0
    assert r.accuracy_drop_points <= 5 and r.accuracy_ci_points is not None
