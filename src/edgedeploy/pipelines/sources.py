"""Where frames come from: video files and network streams (PyAV/FFmpeg), camera devices, image folders.

Every source yields :class:`~edgedeploy.pipelines.stage.Frame` objects from ``frames(stop)``
until it ends or ``stop`` is set, and says what happened in ``report()``. ``live`` sources
deliver frames at the camera's pace whether or not anyone keeps up (the pipeline then drops
frames by policy); a file read offline is not live unless ``realtime=True`` plays it at its
own frame rate, as a camera would.

A stream that stops or stalls (no packet within ``read_timeout`` s) is reopened with
exponential back-off (``backoff`` s, doubling, capped) up to ``max_reconnects`` times in a row;
each reconnect is counted and logged. A missing or unreadable file is a :class:`UserError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.pipelines.stage import Frame

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_stream(url: str) -> bool:
    return str(url).lower().startswith(STREAM_SCHEMES)


def _av():
    try:
        import av
    except ImportError:
        raise UserError("reading video needs PyAV: pip install av") from None
    return av


class VideoSource:
    """A video file, a network stream (RTSP/HTTP/...) or a capture device, decoded with PyAV.

    realtime: play a file at its frame rate (a file is otherwise read as fast as it is consumed).
    reconnect: reopen after the stream ends or fails (default: for streams and devices).
    open_timeout / read_timeout: seconds before a stream that does not answer counts as stalled.
    """

    def __init__(self, url: str | Path, *, realtime: bool = False, reconnect: bool | None = None,
                 max_reconnects: int = 5, backoff: tuple[float, float] = (0.5, 8.0),
                 open_timeout: float = 5.0, read_timeout: float = 5.0, format: str | None = None,
                 options: dict[str, str] | None = None, live: bool | None = None):
        self.url = str(url)
        self.stream = is_stream(self.url) or format is not None
        if not self.stream:
            path = Path(self.url)
            if not path.is_file():
                raise UserError(f"video file {self.url} does not exist; give the path of a video "
                                f"(.mp4, .mkv, .ts, ...) or a stream URL (rtsp://, http://)")
        self.realtime = realtime
        self.live = self.stream or realtime if live is None else live
        self.reconnect = self.stream if reconnect is None else reconnect
        self.max_reconnects, self.backoff = max_reconnects, backoff
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.format, self.options = format, dict(options or {})
        self.fps: float | None = None
        self.reconnects = 0
        self.delivered = 0
        self.errors: list[str] = []
        self.ended = "not started"
        self.on_reconnect: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.url

    def _open(self):
        av = _av()
        kwargs = {"format": self.format, "options": self.options}
        if self.stream:
            kwargs["timeout"] = (self.open_timeout, self.read_timeout)
        return av.open(self.url, **kwargs)

    def _error(self, what: str) -> None:
        log.warning("%s: %s", self.url, what)
        self.errors.append(what)
        del self.errors[:-20]

    def _wait_backoff(self, stop: threading.Event, attempt: int) -> bool:
        """Sleep before reconnect ``attempt`` (1, 2, ...); False when out of attempts or stopped."""
        if attempt > self.max_reconnects:
            self.ended = f"gave up after {self.max_reconnects} reconnect attempts"
            self._error(self.ended)
            return False
        delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
        log.warning("%s: reconnecting in %.1f s (attempt %d of %d)", self.url, delay, attempt, self.max_reconnects)
        if stop.wait(delay):
            self.ended = "stopped"
            return False
        self.reconnects += 1
        if self.on_reconnect:
            self.on_reconnect()
        return True

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        av = _av()
        stop = stop or threading.Event()
        attempt, index = 0, 0
        while not stop.is_set():
            try:
                container = self._open()
                vstream = container.streams.video[0] if container.streams.video else None
                if vstream is None:
                    container.close()
                    raise UserError(f"{self.url} has no video stream; give a video file or stream")
            except UserError:
                raise
            except (av.error.FFmpegError, OSError) as exc:
                if not self.stream:
                    raise UserError(f"cannot read video {self.url}: {exc}; expected a video file "
                                    "FFmpeg can decode (is it complete and not corrupt?)") from exc
                self._error(f"cannot open: {exc}")
                attempt += 1
                if not self.reconnect or not self._wait_backoff(stop, attempt):
                    return
                continue
            rate = vstream.average_rate or vstream.guessed_rate
            self.fps = float(rate) if rate else self.fps
            got, t0, pts0 = 0, None, None
            try:
                for vf in container.decode(vstream):
                    if stop.is_set():
                        break
                    image = vf.to_ndarray(format="bgr24")
                    pts = float(vf.time) if vf.time is not None else (got / self.fps if self.fps else None)
                    if self.realtime and pts is not None:  # play at the file's own pace
                        if t0 is None:
                            t0, pts0 = time.perf_counter(), pts
                        wait = t0 + (pts - pts0) - time.perf_counter()
                        if wait > 0 and stop.wait(wait):
                            break
                    got += 1
                    attempt = 0
                    yield Frame(index, image, pts=pts, source=self.url)
                    index += 1
                    self.delivered = index
                else:
                    self.ended = "end of stream"
            except (av.error.FFmpegError, OSError) as exc:
                msg = f"stopped after {got} frames: {exc}"
                self._error(msg)
                if not self.stream and got == 0:
                    raise UserError(f"cannot decode video {self.url}: {exc}; the file is corrupt or not a video") from exc
                self.ended = msg
            finally:
                container.close()
            if stop.is_set():
                self.ended = "stopped"
                return
            if not self.reconnect:
                return
            attempt += 1  # a stream that ended is a stream that stopped: reopen it
            if not self._wait_backoff(stop, attempt):
                return

    def report(self) -> dict:
        return {"source": self.url, "frames": self.delivered, "fps": self.fps, "reconnects": self.reconnects,
                "ended": self.ended, "errors": list(self.errors)}

    def close(self) -> None:
        """Nothing to free: containers are closed as frames() ends."""


class CameraSource(VideoSource):
    """A capture device (V4L2 on Linux: ``/dev/video0``), live, reopened if it goes away."""

    def __init__(self, device: str = "/dev/video0", *, fps: int | None = None, size: tuple[int, int] | None = None,
                 input_format: str = "v4l2", **kwargs):
        if not Path(device).exists():
            raise UserError(f"camera {device} does not exist; list devices with `ls /dev/video*` or use a "
                            "video file or stream as the source")
        options = {}
        if fps:
            options["framerate"] = str(fps)
        if size:
            options["video_size"] = f"{size[0]}x{size[1]}"
        super().__init__(device, format=input_format, options=options, live=True, **kwargs)


class ImageFolderSource:
    """The images of a folder in name order (``.png``, ``.jpg``...), one frame each.

    fps: deliver at that rate as a camera would (live); None reads them as fast as they are used.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, loop: int = 1):
        self.path = Path(path)
        if not self.path.is_dir():
            raise UserError(f"image folder {self.path} does not exist; give a folder of images")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")
        self.fps, self.loop = fps, loop
        self.live = fps is not None
        self.delivered, self.errors = 0, []
        self.name = str(self.path)

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        stop = stop or threading.Event()
        t0 = time.perf_counter()
        index = 0
        for _ in range(self.loop):
            for path in self.files:
                if stop.is_set():
                    return
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    self.errors.append(f"cannot read {path.name}: not an image or corrupt; skipped")
                    log.warning(self.errors[-1])
                    continue
                if self.fps:
                    wait = t0 + index / self.fps - time.perf_counter()
                    if wait > 0 and stop.wait(wait):
                        return
                frame = Frame(index, image, pts=index / self.fps if self.fps else None, source=str(path))
                frame.path = str(path)
                yield frame
                index += 1
                self.delivered = index

    def report(self) -> dict:
        return {"source": str(self.path), "frames": self.delivered, "images": len(self.files),
                "errors": list(self.errors)}


class ArraySource:
    """Frames from memory (a list of BGR images): for tests and examples. ``fps`` makes it live."""

    def __init__(self, images: list[np.ndarray], *, fps: float | None = None):
        self.images, self.fps = images, fps
        self.live = fps is not None
        self.name = "arrays"
        self.delivered = 0

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        stop = stop or threading.Event()
        t0 = time.perf_counter()
        for i, image in enumerate(self.images):
            if stop.is_set():
                return
            if self.fps:
                wait = t0 + i / self.fps - time.perf_counter()
                if wait > 0 and stop.wait(wait):
                    return
            self.delivered = i + 1
            yield Frame(i, image, pts=i / self.fps if self.fps else None, source=self.name)

    def report(self) -> dict:
        return {"source": self.name, "frames": self.delivered}


def open_source(url: str | Path, **kwargs):
    """The source for ``url``: a folder of images, a ``/dev/video*`` camera, or a video file/stream."""
    text = str(url)
    if not is_stream(text) and Path(text).is_dir():
        return ImageFolderSource(text, **kwargs)
    if text.startswith("/dev/video"):
        return CameraSource(text, **kwargs)
    return VideoSource(text, **kwargs)
