"""evaluate(): real models on small generated sets (integration), and its errors (fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy import datasets
from edgedeploy.engines import EngineOptions
from edgedeploy.errors import UserError
from edgedeploy.evaluation import TASKS, evaluate, score_ocr
from edgedeploy.evaluation.scoring import container_code

TWO = EngineOptions(threads=2)


# --- fast: no real model ------------------------------------------------------------------------

def test_unknown_task_suggests():
    with pytest.raises(UserError, match="did you mean 'orientation'") as err:
        evaluate("pplcnet-orientation", "orientaton")
    assert "\n" not in str(err.value)


def test_system_task_needs_a_system_name():
    with pytest.raises(UserError, match="did you mean 'ppocrv6'") as err:
        evaluate("ppocrv7", "ocr", n=1)
    assert "\n" not in str(err.value)


def test_data_of_the_wrong_kind_is_refused(tmp_path):
    datasets.save(datasets.generate("rec-lines", 2, 0), tmp_path / "lines")
    with pytest.raises(UserError, match="cannot be scored on LineSample") as err:
        evaluate("pplcnet-orientation", "orientation", data=tmp_path / "lines")
    assert "\n" not in str(err.value)


def test_corrupted_data_dir_is_a_clear_error(tmp_path):
    folder = tmp_path / "pages"
    datasets.save(datasets.generate("pages", 1, 0), folder)
    (folder / "labels.json").write_text('{"format": 1, "kind": "PageSample", "samples": [{"image": "00000.png"')
    with pytest.raises(UserError, match="malformed data set") as err:
        evaluate("ppocrv6-det", "det", data=folder)
    assert "\n" not in str(err.value)
    (folder / "labels.json").unlink()
    with pytest.raises(UserError, match="labels.json is missing"):
        evaluate("ppocrv6-det", "det", data=folder)


def test_every_task_has_a_scorable_default_data_set():
    for spec in TASKS.values():
        assert datasets.DATASETS[spec.dataset].sample in spec.samples, spec.name


@pytest.mark.parametrize("texts, code", [
    (["KLEU", "013036 3"], "KLEU0130363"),          # two painted lines, check digit valid
    (["MSKU 305438 [8]"], "MSKU3054388"),           # framing marks dropped
    (["xx CSQU 305438 3 yy"], "CSQU3054383"),        # noise around the code dropped
    (["CSQU 3O5438 3"], "CSQU3054383"),              # O read for 0, confirmed by the check digit: as the gate reads
    (["MQUU", "733908", "37"], "MQUU73390837"),      # check digit wrong: what was read, to be scored as rejected
    (["MQUU7339083 CSQU3054383"], "CSQU3054383"),    # a valid window wins over an invalid one
    (["KLEU", "013036"], "KLEU013036"),               # check digit missed: rejected (a gate asks again)
    (["ABC", "no code"], None),                       # text, but no code: missed
])
def test_container_code_is_read_as_the_gate_reads_it(texts, code):
    assert container_code(texts) == code


def test_a_code_failing_its_check_digit_scores_as_rejected():
    from edgedeploy.evaluation.metrics import container_accuracy

    r = container_accuracy([container_code(["MQUU", "733908", "37"]), container_code(["no code"])], ["MQUU7339083"] * 2)
    assert (r.correct, r.rejected, r.missing, r.wrong_accepted) == (0, 1, 1, 0)


def test_score_ocr_pairs_lines_by_iou():
    box = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], np.float32)
    far = box + [0, 300]
    truth = [datasets.PageSample(image=np.zeros((1, 1, 3), np.uint8), boxes=[box, box + [0, 40]],
                                 texts=["alpha", "beta"], seed=0)]
    value, d = score_ocr([[box + [0, 40], box, far]], [["beta", "alpha!", "ghost"]], truth)
    assert value == 0.5 and d["exact"] == 1 and d["extra_lines"] == 1
    assert d["det_recall"] == 1.0 and d["det_precision"] == pytest.approx(2 / 3)


# --- integration: the real zoo models ------------------------------------------------------------

@pytest.mark.integration
def test_orientation_on_eight_pages():
    seen = []
    r = evaluate("pplcnet-orientation", "orientation", options=TWO, n=8,
                 progress=lambda done, total: seen.append((done, total)))
    assert (r.metric, r.n, r.task) == ("accuracy", 8, "orientation")
    assert r.value >= 0.9
    assert seen[-1] == (8, 8)
    assert r.timings["orientation"]["model_ms"] > 0
    json.dumps(r.to_dict())  # plain JSON


@pytest.mark.integration
def test_det_and_rec_read_clean_data():
    det = evaluate("ppocrv6-det", "det", options=TWO, n=2)
    assert det.metric == "hmean" and det.value >= 0.9 and det.details["tp"] > 0
    rec = evaluate("ppocrv6-rec", options=TWO, n=6)  # task from the zoo entry
    assert rec.task == "rec" and rec.value >= 0.8 and rec.details["cer"] < 0.05


@pytest.mark.integration
def test_an_open_session_can_be_evaluated():
    from edgedeploy import engines, zoo

    with engines.load(zoo.fetch("ppocr-cls").path, engine="onnxruntime", options=TWO) as session:
        r = evaluate(session, "cls", like="ppocr-cls", n=10)
    assert r.engine == "onnxruntime" and r.value >= 0.9


@pytest.mark.integration
def test_ocr_with_a_stage_replaced_by_a_session():
    from edgedeploy import engines, zoo

    with engines.load(zoo.fetch("ppocrv6-det").path, engine="onnxruntime", options=TWO) as det:
        r = evaluate("ocr", "ocr", options=TWO, n=1, det_model=det)
    assert r.metric == "line_accuracy" and r.value >= 0.8
    assert set(r.timings) == {"det", "crop", "cls", "rec"}


@pytest.mark.integration
def test_wrong_task_for_a_model_is_one_line():
    with pytest.raises(UserError, match="is a 'det' model, not 'rec'") as err:
        evaluate("ppocrv6-det", "rec", n=1)
    assert "\n" not in str(err.value)
    # A file outside the zoo is checked by its outputs: a detector cannot be a classifier.
    from edgedeploy import zoo

    with pytest.raises(UserError, match="task 'orientation' expects") as err:
        evaluate(str(zoo.fetch("ppocrv6-det").path), "orientation", n=1)
    assert "\n" not in str(err.value)


@pytest.mark.integration
def test_cli_eval_json(edgedeploy_cli):
    out = edgedeploy_cli(["eval", "pplcnet-orientation", "--n", "4", "--threads", "2", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["task"] == "orientation" and result["n"] == 4 and 0.0 <= result["value"] <= 1.0
