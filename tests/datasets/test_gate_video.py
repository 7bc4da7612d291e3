"""Generated gate-camera videos: deterministic, with the truth the gate is scored against."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.datasets.gate_video import GateTruth, make_gate_video, truth_path
from edgedeploy.errors import UserError

pytest.importorskip("av", reason="PyAV not installed: pip install av")


def test_gate_video_is_deterministic_with_truth(tmp_path):
    a = make_gate_video(tmp_path / "a.mp4", containers=2, seed=5)
    b = make_gate_video(tmp_path / "b.mp4", containers=2, seed=5)
    assert a.codes == b.codes and a.frames == b.frames and len(a.codes) == 2
    assert GateTruth.load(truth_path(tmp_path / "a.mp4")).codes == a.codes
    for c in a.containers:
        assert 0 <= c.first_frame < c.code_first <= c.code_last < c.last_frame < a.frames
    from edgedeploy.pipelines import VideoSource

    frames = list(VideoSource(tmp_path / "a.mp4").frames())
    assert len(frames) == a.frames and frames[0].image.shape == (360, 640, 3)
    mid = frames[(a.containers[0].code_first + a.containers[0].code_last) // 2].image
    assert np.std(mid) > 10  # a painted container is in view
    with pytest.raises(UserError):
        make_gate_video(tmp_path / "c.mp4", containers=0)
