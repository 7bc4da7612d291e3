"""Generated gate videos and the gate pipeline on the real PP-OCRv6 models."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.pipelines import Pipeline, VideoSource
from edgedeploy.pipelines.gate import evaluate_events, gate_stages
from edgedeploy.pipelines.gate_video import GateTruth, make_gate_video, truth_path


def test_gate_video_is_deterministic_with_truth(tmp_path):
    a = make_gate_video(tmp_path / "a.mp4", containers=2, seed=5)
    b = make_gate_video(tmp_path / "b.mp4", containers=2, seed=5)
    assert a.codes == b.codes and a.frames == b.frames and len(a.codes) == 2
    assert GateTruth.load(truth_path(tmp_path / "a.mp4")).codes == a.codes
    for c in a.containers:
        assert 0 <= c.first_frame < c.code_first <= c.code_last < c.last_frame < a.frames
    frames = list(VideoSource(tmp_path / "a.mp4").frames())
    assert len(frames) == a.frames and frames[0].image.shape == (360, 640, 3)
    mid = frames[(a.containers[0].code_first + a.containers[0].code_last) // 2].image
    assert np.std(mid) > 10  # a painted container is in view
    with pytest.raises(UserError):
        make_gate_video(tmp_path / "c.mp4", containers=0)


def test_evaluate_events_matches_by_frames():
    from edgedeploy.pipelines.gate_video import GateContainer

    truth = GateTruth("v", 25, 640, 360, 300, 0, [GateContainer("CSQU3054383", 0, 100, 30, 60),
                                                  GateContainer("MSKU1234565", 90, 200, 120, 150)])
    events = [{"type": "container", "code": "CSQU3054383", "first_frame": 25, "last_frame": 70},
              {"type": "container", "code": None, "first_frame": 118, "last_frame": 160},
              {"type": "container", "code": "ABCU0000000", "first_frame": 250, "last_frame": 260}]
    r = evaluate_events(events, truth)
    assert (r["correct"], r["missing"], r["extra_events"]) == (1, 1, 1)


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
