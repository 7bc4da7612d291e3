"""Sources on real encoded video: files, truncated and corrupt files, an HTTP stream that stops or stalls."""

from __future__ import annotations

import http.server
import threading
import time

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.pipelines import ImageFolderSource, Pipeline, VideoSource, open_source
from tests.pipelines.conftest import encode_video


def test_video_file_frames(video):
    src = VideoSource(video)
    frames = list(src.frames())
    assert len(frames) == 30 and frames[0].image.shape == (96, 160, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in frames] == list(range(30))
    assert src.report()["ended"] == "end of stream" and src.fps == pytest.approx(25)
    assert not src.live


def test_realtime_file_plays_at_its_frame_rate(video):
    t = time.perf_counter()
    n = sum(1 for _ in VideoSource(video, realtime=True).frames())
    assert n == 30 and time.perf_counter() - t >= 29 / 25 * 0.9


def test_missing_and_corrupt_videos_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        VideoSource(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video at all" * 100)
    with pytest.raises(UserError, match="cannot (read|decode) video"):
        list(VideoSource(bad).frames())


def test_truncated_file_ends_early_and_says_so(tmp_path):
    full = encode_video(tmp_path / "full.ts", 40)
    cut = tmp_path / "cut.ts"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    src = VideoSource(cut)
    n = sum(1 for _ in src.frames())
    assert 0 < n < 40


class _Server:
    """Serves one video over HTTP; ``cut`` bytes on the first ``cut_times`` requests, or stalls."""

    def __init__(self, data: bytes, *, cut: int | None = None, cut_times: int = 1, stall: bool = False):
        server = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests += 1
                if stall:
                    time.sleep(3)
                    return
                body = data[:cut] if cut and server.requests <= cut_times else data
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.ts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_stream_that_stops_midway_is_reopened_with_backoff(tmp_path):
    data = encode_video(tmp_path / "s.ts", 40).read_bytes()
    server = _Server(data, cut=len(data) // 2)
    try:
        src = VideoSource(server.url, max_reconnects=1, backoff=(0.1, 0.2), read_timeout=2)
        assert src.live and src.reconnect
        pipe = Pipeline(src, [], name="stream")
        report = pipe.run(duration=3)  # a stream that delivers frames is reopened without end
    finally:
        server.close()
    assert report.source["reconnects"] >= 1 and server.requests >= 2
    assert report.stats["reconnects"] == report.source["reconnects"]
    assert report.source["frames"] > 40  # half a video, then a whole one after reconnecting
    assert report.stopped_by == "duration=3s" and any("stopped after" in e for e in report.source["errors"])


def test_stalled_stream_times_out_and_gives_up_with_a_report(tmp_path):
    server = _Server(b"", stall=True)
    try:
        src = VideoSource(server.url, max_reconnects=1, backoff=(0.1, 0.1), open_timeout=0.5, read_timeout=0.5)
        t = time.perf_counter()
        frames = list(src.frames())
        elapsed = time.perf_counter() - t
    finally:
        server.close()
    assert frames == [] and src.reconnects == 1 and elapsed < 10
    assert "gave up after 1 reconnect" in src.report()["ended"] and src.report()["errors"]


def test_image_folder_and_open_source(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "99.png").write_bytes(b"broken")
    src = open_source(tmp_path)
    assert isinstance(src, ImageFolderSource)
    frames = list(src.frames())
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 50, 100]
    assert any("99.png" in e for e in src.report()["errors"])
    with pytest.raises(UserError, match="camera /dev/video99 does not exist"):
        open_source("/dev/video99")
