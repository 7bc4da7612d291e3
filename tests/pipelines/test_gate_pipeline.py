"""The gate pipeline on the real PP-OCRv6 models, over generated gate videos."""

from __future__ import annotations

import pytest

from edgedeploy.datasets.gate_video import make_gate_video
from edgedeploy.evaluation.gate import evaluate_events
from edgedeploy.pipelines import Pipeline, VideoSource
from edgedeploy.pipelines.gate import gate_stages


@pytest.mark.integration
def test_gate_pipeline_reads_every_container(tmp_path):
    truth = make_gate_video(tmp_path / "gate.mp4", containers=2, seed=11)
    pipe = Pipeline(VideoSource(tmp_path / "gate.mp4"), gate_stages(snapshots=str(tmp_path / "snaps")))
    report = pipe.run()
    score = evaluate_events(report.events, truth)
    assert score["correct"] == 2, score
    assert score["extra_events"] == 0
    events = [e for e in report.events if e["type"] == "container"]
    assert all(e["snapshot"] and (tmp_path / "snaps").joinpath(e["snapshot"].split("/")[-1]).is_file() for e in events)
    assert report.stats["dropped"] == 0  # offline: every frame


@pytest.mark.integration
def test_gate_pipeline_live_drops_frames_by_policy_not_lag(tmp_path):
    make_gate_video(tmp_path / "gate.mp4", containers=1, seed=3)
    pipe = Pipeline(VideoSource(tmp_path / "gate.mp4", realtime=True), gate_stages())
    s = pipe.run(max_frames=75).stats  # 3 s of 25 FPS video
    assert s["drop_policy"] == "latest" and s["captured"] == 75
    assert s["processed"] + s["dropped"] == 75
    assert s["capture_fps"] > 20  # the source was never held back by the models
    assert s["end_to_end"]["p50_ms"] < 1000  # bounded: no backlog builds up
