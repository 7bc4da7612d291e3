"""Deploy for a model edgedeploy has never seen: INT8 refused is a decision the user sees, and every
precision the tuner may pick (BF16/FP16 included) is accuracy-checked on the user's data like INT8.

The optimiser and the accuracy checks run for real; only the latency harness is replaced (its fresh
processes per plan cost minutes and are tested in tests/deploy)."""

from __future__ import annotations

import cv2
import pytest
import yaml

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgedeploy[torch]'")

from edgedeploy import engines  # noqa: E402
from edgedeploy.deploy import config  # noqa: E402
from edgedeploy.deploy.tuner import Measurement, default_produce, tune  # noqa: E402
from edgedeploy.errors import VerdictError  # noqa: E402
from edgedeploy.ingest import from_torch  # noqa: E402
from tests.byo.models import CARD, build, images  # noqa: E402


def _measure(plans, stage):
    return [Measurement(plan=p, ok=True, stage=stage, latency_ms={"p50": 5.0, "p99": 6.0}, memory_bytes=30 * 2**20,
                        throughput=200.0) for p in plans]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("dep")
    card = {**CARD, "task": "detection"}
    from edgedeploy import cards

    from_torch(build("yolo"), card=cards.parse(card), out=d / "det.onnx")
    (d / "det.card.yaml").write_text(yaml.safe_dump(card))
    (d / "imgs").mkdir()
    for i, im in enumerate(images(48, 6)):
        cv2.imwrite(str(d / "imgs" / f"{i}.png"), im)
    return d


def _cfg(d, precision, drop, engines_):
    path = d / f"deploy-{precision}.yaml"
    path.write_text(yaml.safe_dump({
        "model": str(d / "det.onnx"), "card": str(d / "det.card.yaml"),
        "deployment": {"hardware": "local", "precision": precision, "thread_num": 1, "engines": engines_},
        "performance": {"target_latency": "1s"},
        "evaluation": {"calibration": str(d / "imgs"), "max_accuracy_drop": drop}}))
    return config.load(path)


def test_int8_asked_for_but_refused_exits_1_with_the_figures(setup, tmp_path):
    cfg = _cfg(setup, "int8", 0.0001, ["onnxruntime"])  # 0.01 points: no INT8 detector meets it
    with pytest.raises(VerdictError, match=r"precision int8 asked for, but no INT8 model could be made — "
                                           r"onnxruntime int8: optimiser could not make it: .*points") as exc:
        tune(cfg, measure=_measure, produce=default_produce(cfg, str(tmp_path)), cores=1)
    assert "onnxruntime int8" in exc.value.figures["int8"]


def test_auto_says_why_it_fell_back(setup, tmp_path):
    cfg = _cfg(setup, "auto", 0.0001, ["onnxruntime"])
    r = tune(cfg, measure=_measure, produce=default_produce(cfg, str(tmp_path)), cores=1)
    assert r.chosen is not None and r.chosen.plan.precision.value == "fp32"
    assert any(n.startswith("INT8 not used (precision auto falls back to float): onnxruntime int8:") for n in r.notes)


@pytest.mark.skipif(not engines.available("openvino"), reason="OpenVINO not installed")
def test_runtime_precisions_are_accuracy_checked(setup, tmp_path):
    """OpenVINO's BF16/FP16 hints are scored on the held-out images like INT8: within budget they carry
    their accuracy; a budget of 0.01 points prunes them with the figures."""
    cfg = _cfg(setup, ["bf16", "fp32"], 0.05, ["openvino"])
    r = tune(cfg, measure=_measure, produce=default_produce(cfg, str(tmp_path)), cores=1)
    bf16 = [m for m in r.measurements if m.plan.precision.value == "bf16"]
    pruned = {p.what: p.reason for p in r.pruned}
    assert (bf16 and bf16[0].accuracy is not None) or "accuracy" in pruned.get("openvino bf16", "")
    strict = _cfg(setup, ["fp16", "fp32"], 0.0, ["openvino"])
    r = tune(strict, measure=_measure, produce=default_produce(strict, str(tmp_path)), cores=1)
    fp16 = [m for m in r.measurements if m.plan.precision.value == "fp16"]
    reason = {p.what: p.reason for p in r.pruned}.get("openvino fp16", "")
    assert (fp16 and fp16[0].accuracy == 1.0) or ("points down, above max_accuracy_drop 0 points" in reason
                                                  and "output fidelity" in reason)
