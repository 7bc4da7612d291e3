"""Bounded queues, latest-frame-wins, live metrics, Prometheus, rules, errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.pipelines import ArraySource, Frame, FrameQueue, FunctionStage, Pipeline
from edgedeploy.pipelines.stages import ResizeStage, RuleStage


def test_latest_policy_pushes_the_oldest_out_and_block_does_not():
    q = FrameQueue(2, "latest")
    for i in range(5):
        q.put(Frame(i, None))
    assert q.dropped == 3 and [q.get().index, q.get().index] == [3, 4]
    b = FrameQueue(1, "block")
    b.put(Frame(0, None))
    b.close()  # a closed queue stops waiting
    b.put(Frame(1, None))
    assert b.dropped == 0
    with pytest.raises(UserError, match="drop policy"):
        FrameQueue(1, "newest")


def _slow(ms):
    def stage(frame):
        time.sleep(ms / 1e3)
        return frame
    return stage


def test_slow_model_on_a_live_source_drops_frames_and_latency_stays_bounded():
    images = [np.zeros((8, 8, 3), np.uint8)] * 60
    pipe = Pipeline(ArraySource(images, fps=100), [FunctionStage(_slow(30), "model")], name="t")
    seen = []
    report = pipe.run(on_stats=seen.append, stats_every=0.2)
    s = report.stats
    assert s["drop_policy"] == "latest" and s["captured"] == 60
    assert s["dropped"] > 20 and s["processed"] + s["dropped"] == 60
    # Lag does not grow: each processed frame waited at most ~one model run in the queue.
    assert s["end_to_end"]["p99_ms"] < 150
    assert s["stages"]["model"]["p50_ms"] >= 25
    assert seen and seen[-1]["captured"] > 0  # live stats were reported while running


def test_offline_source_blocks_and_processes_every_frame_in_order():
    out = []
    stages = [FunctionStage(_slow(2), "a"), FunctionStage(lambda f: out.append(f.index) or f, "b")]
    report = Pipeline(ArraySource([np.zeros((4, 4, 3), np.uint8)] * 20), stages).run()
    assert report.stats["dropped"] == 0 and out == list(range(20))


def test_prometheus_metrics_are_exposed():
    prom = pytest.importorskip("prometheus_client")
    pipe = Pipeline(ArraySource([np.zeros((4, 4, 3), np.uint8)] * 5), [FunctionStage(lambda f: f, "noop")],
                    name="gate")
    pipe.run()
    text = prom.generate_latest(pipe.metrics.registry).decode()
    assert 'edgedeploy_pipeline_frames_processed_total{pipeline="gate"} 5.0' in text
    assert 'edgedeploy_pipeline_stage_latency_seconds_count{pipeline="gate",stage="noop"} 5.0' in text
    assert "edgedeploy_pipeline_frames_dropped_total" in text


def test_metrics_served_over_http():
    pytest.importorskip("prometheus_client")
    import urllib.request

    from tests.pipelines.conftest import free_port

    pipe = Pipeline(ArraySource([np.zeros((4, 4, 3), np.uint8)] * 3), [FunctionStage(lambda f: f, "noop")], name="web")
    port = free_port()
    pipe.metrics.serve(port)
    pipe.run()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'edgedeploy_pipeline_frames_captured_total{pipeline="web"} 3.0' in body
    with pytest.raises(UserError, match="cannot serve metrics"):
        pipe.metrics.serve(port)


def test_a_failing_stage_stops_the_pipeline_and_raises():
    def boom(frame):
        if frame.index == 3:
            raise RuntimeError("stage exploded")
        return frame
    with pytest.raises(RuntimeError, match="exploded"):
        Pipeline(ArraySource([np.zeros((4, 4, 3), np.uint8)] * 50), [FunctionStage(boom, "boom")]).run()


def test_rule_stage_keeps_drops_and_tags_events():
    def emit(frame):
        frame.events = [{"code": "A", "confidence": 0.9}, {"code": "B", "confidence": 0.2}]
        return frame
    keep = RuleStage(field="confidence", op=">=", value=0.5)
    assert [e["code"] for e in keep.process(emit(Frame(0, None))).events] == ["A"]
    tag = RuleStage(field="code", op="matches", value="^B", action="tag", name="b_codes")
    assert [e.get("rules") for e in tag.process(emit(Frame(0, None))).events] == [None, ["b_codes"]]
    with pytest.raises(UserError, match="did you mean 'matches'"):
        RuleStage(field="x", op="matchs", value=1)


def test_resize_stage_keeps_the_full_frame_for_later_stages():
    f = ResizeStage(roi=(0.5, 0.0, 1.0, 1.0), scale=0.5).process(Frame(0, np.zeros((100, 200, 3), np.uint8)))
    assert f.image.shape == (50, 50, 3) and f.full.shape == (100, 200, 3) and f.roi == (100, 0, 0.5)
