"""Where results go: a JSON-lines file, an HTTP webhook, an annotated video file (and an MQTT
topic: :mod:`edgedeploy.pipelines.mqtt`).

Sinks see every frame that passed the stages and the end-of-stream marker (which carries the
events stages emit when the stream ends). ``close()`` returns a report of what was delivered,
what is still waiting and what was dropped.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.pipelines.stage import Frame, Sink

log = logging.getLogger(__name__)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def to_json(obj) -> str:
    return json.dumps(obj, default=_plain, ensure_ascii=False)


class JsonlSink(Sink):
    """One JSON object a line: each event (``what="events"``) or a summary of each frame
    (``what="frames"``: index, pts, per-stage ms, its events).

    The file is appended to, never truncated: lines from earlier runs stay. With ``max_bytes``
    the file is rotated before a write would take it past that size (``events.jsonl`` becomes
    ``events.jsonl.1``, ``.1`` becomes ``.2``..., at most ``backups`` old files kept).
    """

    def __init__(self, path: str | Path, *, what: str = "events", max_bytes: int | None = None, backups: int = 3,
                 name: str = "jsonl"):
        if what not in ("events", "frames"):
            raise UserError(f"jsonl sink: what={what!r}; expected 'events' or 'frames'")
        if max_bytes is not None and max_bytes < 1:
            raise UserError(f"jsonl sink: max_bytes={max_bytes}; expected a size of at least 1 byte, or none")
        if backups < 1:
            raise UserError(f"jsonl sink: backups={backups}; expected at least 1")
        self.path, self.what, self.name = Path(path), what, name
        self.max_bytes, self.backups = max_bytes, backups
        self._file = None
        self.written = self.rotations = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("a", encoding="utf-8")
        self.rotations += 1

    def write(self, frame: Frame) -> None:
        if self.what == "events":
            rows = frame.events
        elif frame.final:
            rows = [{"end": True, "events": frame.events}] if frame.events else []
        else:
            rows = [{"frame": frame.index, "pts": frame.pts, "timings_ms": frame.timings, "events": frame.events}]
        for row in rows:
            line = to_json(row) + "\n"
            if self.max_bytes is not None and self._file.tell() and \
                    self._file.tell() + len(line.encode()) > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self.written += 1
        if rows:
            self._file.flush()

    def close(self) -> dict:
        if self._file:
            self._file.close()
        return {"path": str(self.path), "written": self.written, "rotations": self.rotations}


# --- HTTP webhook ------------------------------------------------------------------------------

class WebhookSink(Sink):
    """POST each event as JSON to ``url``; ``retries`` tries with doubling back-off, then the event
    is counted as failed (and logged) rather than stalling the pipeline."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5,
                 headers: dict[str, str] | None = None, name: str = "webhook"):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"webhook url {url!r} must start with http:// or https://")
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.name = name
        self.sent = self.failed = 0
        self.last_error = ""

    def write(self, frame: Frame) -> None:
        for event in frame.events:
            body = to_json(event).encode()
            for attempt in range(self.retries):
                try:
                    req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        resp.read()
                    self.sent += 1
                    break
                except OSError as exc:
                    self.last_error = str(exc)
                    if attempt + 1 < self.retries:
                        time.sleep(self.backoff * 2 ** attempt)
            else:
                self.failed += 1
                log.warning("webhook %s: event not delivered after %d tries: %s", self.url, self.retries, self.last_error)

    def close(self) -> dict:
        return {"url": self.url, "sent": self.sent, "failed": self.failed, "last_error": self.last_error}


# --- annotated video ---------------------------------------------------------------------------

class VideoSink(Sink):
    """Write processed frames, with detected boxes, tracks and their codes drawn, to a video file
    (PyAV; H.264 where libx264 is present, else MPEG-4). Only processed frames are written, so
    the video shows what the pipeline saw, at ``fps``."""

    def __init__(self, path: str | Path, *, fps: float = 25.0, name: str = "video"):
        self.path, self.fps, self.name = Path(path), fps, name
        self._container = self._stream = None
        self.written = 0

    def open(self) -> None:
        try:
            import av  # noqa: F401
        except ImportError:
            raise UserError("the video sink needs PyAV: pip install av") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _start(self, w: int, h: int) -> None:
        import av

        self._container = av.open(str(self.path), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1000))
        self._stream.width, self._stream.height, self._stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"

    def write(self, frame: Frame) -> None:
        import av

        if frame.final:
            return
        image = frame.full_image.copy()
        if self._container is None:
            self._start(image.shape[1], image.shape[0])
        for quad in frame.text_boxes():
            cv2.polylines(image, [np.asarray(quad, np.int32)], True, (0, 200, 255), 1)
        for track_id, box, code in frame.tracks or []:
            x1, y1, x2, y2 = (int(v) for v in box)
            cv2.rectangle(image, (x1, y1), (x2, y2), (0, 255, 0), 2)
            cv2.putText(image, f"#{track_id} {code or '?'}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 255, 0), 1, cv2.LINE_AA)
        for line in frame.lines or []:
            x, y = np.asarray(line.box).min(0).astype(int)
            cv2.putText(image, line.text, (int(x), max(12, int(y) - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 0, 0), 1)
        h, w = self._stream.height, self._stream.width
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.written += 1

    def close(self) -> dict:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        return {"path": str(self.path), "frames": self.written}
