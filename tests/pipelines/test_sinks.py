"""JSON lines, webhook and annotated-video sinks."""

from __future__ import annotations

import http.server
import json
import threading

import numpy as np

from edgedeploy.pipelines import ArraySource, Frame, FunctionStage, Pipeline, VideoSource
from edgedeploy.pipelines.sinks import JsonlSink, VideoSink, WebhookSink


def _emit(frame):
    frame.events.append({"type": "x", "frame": frame.index, "score": np.float32(0.5)})
    frame.tracks = [(1, np.array([10, 10, 40, 30], np.float32), "CSQU3054383")]
    return frame


def test_jsonl_events_and_frames(tmp_path):
    images = [np.zeros((32, 48, 3), np.uint8)] * 4
    Pipeline(ArraySource(images), [FunctionStage(_emit, "emit")],
             [JsonlSink(tmp_path / "e.jsonl"), JsonlSink(tmp_path / "f.jsonl", what="frames", name="frames")]).run()
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in events] == [0, 1, 2, 3] and events[0]["score"] == 0.5
    frames = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert len(frames) == 4 and "emit" in frames[0]["timings_ms"]


def test_jsonl_appends_across_runs_and_rotates_by_size(tmp_path):
    images = [np.zeros((8, 8, 3), np.uint8)] * 4
    path = tmp_path / "e.jsonl"
    for _ in range(2):
        Pipeline(ArraySource(images), [FunctionStage(_emit, "emit")], [JsonlSink(path)]).run()
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1, 2, 3] * 2
    line = len(path.read_text().splitlines()[0]) + 1
    sink = JsonlSink(path, max_bytes=3 * line, backups=2)
    report = Pipeline(ArraySource(images * 2), [FunctionStage(_emit, "emit")], [sink]).run()
    kept = [path, path.with_name("e.jsonl.1"), path.with_name("e.jsonl.2")]
    assert report.sinks["jsonl"]["rotations"] == 3 and not path.with_name("e.jsonl.3").exists()
    assert all(len(p.read_text().splitlines()) <= 3 for p in kept)
    # the newest lines are in the file itself, the older ones in .1, .2: nothing half-written
    assert [json.loads(ln)["frame"] for ln in path.read_text().splitlines()] == [6, 7]


def test_annotated_video_is_a_real_video(tmp_path, video):
    out = tmp_path / "annotated.mp4"
    report = Pipeline(VideoSource(video), [FunctionStage(_emit, "emit")], [VideoSink(out)]).run()
    assert report.sinks["video"]["frames"] == 30
    decoded = list(VideoSource(out).frames())
    assert len(decoded) == 30 and decoded[0].image.shape == (96, 160, 3)
    assert decoded[5].image[10:12, 10:40, 1].mean() > 150  # the green track box is drawn


def test_webhook_posts_each_event_and_counts_failures():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sink = WebhookSink(f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    f = Frame(0, None)
    f.events = [{"code": "A"}, {"code": "B"}]
    sink.write(f)
    httpd.shutdown()
    httpd.server_close()
    assert [r["code"] for r in received] == ["A", "B"] and sink.close()["sent"] == 2
    down = WebhookSink(f"http://127.0.0.1:{httpd.server_address[1]}/hook", retries=2, backoff=0.01, timeout=0.5)
    down.write(f)
    assert down.close()["failed"] == 2
