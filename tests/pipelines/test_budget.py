"""The latency budget: the frame interval shared among stages, reported per stage."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.pipelines import ArraySource, FunctionStage, Pipeline, budget
from edgedeploy.pipelines.gate import ReadStage, TrackerStage
from edgedeploy.pipelines.ocr import DetectStage


def _stages():
    return [DetectStage(), ReadStage(), TrackerStage(), FunctionStage(lambda f: f, name="rule")]


def test_shares_come_from_the_stages_the_config_and_what_is_left():
    split = budget.shares(_stages())
    assert split == pytest.approx({"detect": 0.5, "read": 0.35, "track": 0.05, "rule": 0.1})
    split = budget.shares(_stages(), {"detect": 0.6, "read": 0.2})
    assert split == pytest.approx({"detect": 0.6, "read": 0.2, "track": 0.05, "rule": 0.15})
    with pytest.raises(UserError, match="'detct', which is not a stage"):
        budget.shares(_stages(), {"detct": 0.5})
    with pytest.raises(UserError, match="add up to 1.25"):
        budget.shares(_stages(), {"detect": 0.9, "read": 0.3})
    with pytest.raises(UserError, match=r"fraction of the frame interval in \(0, 1\]"):
        budget.Budget(shares={"detect": 1.5})


def test_report_gives_each_stage_its_share_of_the_interval_and_what_it_used():
    stages = _stages()
    stages[1].skip_converged = False  # a switch left off: named when the stage is over its budget
    times = {"detect": [8.0] * 50 + [30.0], "read": [20.0] * 10, "track": [0.1] * 51}
    r = budget.report(times, stages, fps=25)
    assert r["interval_ms"] == pytest.approx(40.0)
    rows = {x["stage"]: x for x in r["stages"]}
    assert rows["detect"]["budget_ms"] == pytest.approx(20.0) and rows["detect"]["p50_ms"] == pytest.approx(8.0)
    assert not rows["detect"]["over"] and rows["detect"]["switches_left"] == []
    assert rows["read"]["budget_ms"] == pytest.approx(14.0) and rows["read"]["over"]
    assert rows["read"]["used"] == pytest.approx(20.0 / 14.0)
    assert rows["read"]["switches_left"] == ["skip_converged: true", "every: 0 (by the budget)"]
    assert rows["rule"]["p50_ms"] is None and not rows["rule"]["over"]
    assert r["keeps_up"] and r["sum_p50_ms"] == pytest.approx(28.1)
    assert not budget.report({"read": [50.0]}, stages, fps=25)["keeps_up"]  # a stage slower than a frame
    text = budget.lines(r)
    assert text[0].startswith("frame interval 40 ms (25 FPS)") and "over: try skip_converged: true" in text[2]
    assert budget.report(times, stages, fps=10)["stages"][0]["budget_ms"] == pytest.approx(50.0)


def test_a_running_pipeline_reports_its_budget_at_the_sources_rate():
    frames = [np.zeros((8, 8, 3), np.uint8)] * 5
    stages = [FunctionStage(lambda f: f, name="a"), FunctionStage(lambda f: f, name="b")]
    pipe = Pipeline(ArraySource(frames), stages, budget=budget.Budget(fps=50, shares={"a": 0.75}))
    b = pipe.run().stats["budget"]
    assert b["interval_ms"] == pytest.approx(20.0)
    assert [(x["stage"], round(x["budget_ms"], 3)) for x in b["stages"]] == [("a", 15.0), ("b", 5.0)]
    assert all(x["p50_ms"] is not None for x in b["stages"])
    with pytest.raises(UserError, match="not a stage"):
        Pipeline(ArraySource(frames), stages, budget=budget.Budget(shares={"c": 0.5}))


def test_reading_paced_by_the_budget_reads_less_often_while_over_it_and_more_once_under():
    def frames(stage, n, ms):
        for _ in range(n):
            stage._seen += 1
            stage._pace(ms)
        return stage.period

    stage = ReadStage(every=0)
    stage.budget_ms = 14.0
    assert frames(stage, 24, 30.0) == 1  # judged once per 25 frames
    assert frames(stage, 1, 30.0) == 2 and frames(stage, 25, 30.0) == 3
    assert frames(stage, 100, 30.0) == ReadStage.MAX_EVERY  # never fewer reads than every 4th frame
    assert frames(stage, 25, 10.0) == ReadStage.MAX_EVERY  # under budget, not under half: kept
    assert frames(stage, 25, 2.0) == 3 and frames(stage, 50, 2.0) == 1
    fixed = ReadStage(every=2)
    fixed.budget_ms = 14.0
    assert frames(fixed, 100, 30.0) == 2  # a fixed every is left alone
    with pytest.raises(UserError, match="every >= 0"):
        ReadStage(every=-1)


def test_the_pipeline_gives_each_stage_its_budget_in_ms_before_it_opens():
    stages = [FunctionStage(lambda f: f, name="a"), FunctionStage(lambda f: f, name="b")]
    Pipeline(ArraySource([np.zeros((8, 8, 3), np.uint8)]), stages, budget=budget.Budget(fps=20, shares={"a": 0.2})).run()
    assert stages[0].budget_ms == pytest.approx(10.0) and stages[1].budget_ms == pytest.approx(40.0)
