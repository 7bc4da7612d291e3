"""The pipeline runtime: a source, stages and sinks, each in its own thread, joined by bounded queues.

Frames may be dropped in one place only: the queue in front of the first stage. Under
``drop="latest"`` (latest-frame-wins) a frame arriving while that queue is full pushes the
oldest one out, so when the models are slower than the camera the pipeline works on the
newest frame and its lag stays bounded; under ``drop="block"`` the source waits (every frame is
processed: right for files read offline, wrong for a live camera). Once a frame has entered the
first stage it is never dropped: the later queues block, so events are not lost.

Measured while running: per-stage latency, end-to-end latency (capture → sinks done), frames
captured / processed / dropped and the processed FPS, available as :meth:`Pipeline.stats` and as
Prometheus metrics (:mod:`prometheus_client`, one registry per pipeline).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import numpy as np

from edgedeploy.errors import UserError

log = logging.getLogger(__name__)

DropPolicy = Literal["latest", "block"]
DROP_POLICIES = ("latest", "block")


@dataclass(eq=False)
class Frame:
    """One frame travelling through a pipeline.

    index: frame number at the source; image: HxWx3 uint8 BGR (None on the end-of-stream
    marker); pts: seconds into the stream; t_capture: ``time.perf_counter()`` when the source
    delivered it; data: what stages add (boxes, reads, tracks...); events: what sinks publish;
    timings: milliseconds per stage.
    """

    index: int
    image: np.ndarray | None
    pts: float | None = None
    t_capture: float = field(default_factory=time.perf_counter)
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    final: bool = False  # the end-of-stream marker: carries the events stages emit when flushed


class Stage:
    """A step of a pipeline: ``process(frame) -> frame`` (or None to filter the frame out).

    ``finish(end)`` is called once with the end-of-stream marker: a stage holding state (a
    tracker) adds its last events there. ``open(pipeline)`` runs before the first frame, in
    the caller's thread (sessions are loaded there, not at import).
    """

    name = "stage"

    def open(self, pipeline: Pipeline) -> None:
        """Prepare to run; ``pipeline.stage(name)`` finds the other stages."""

    def process(self, frame: Frame) -> Frame | None:
        raise NotImplementedError

    def finish(self, end: Frame) -> Frame:
        return end

    def close(self) -> None:
        """Free what ``open`` took."""


class Sink:
    """Where results go: ``write(frame)`` for every frame that passed all stages (and the
    end-of-stream marker, which carries the last events); ``close()`` returns a report."""

    name = "sink"

    def open(self) -> None:
        """Connect, open files."""

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def close(self) -> dict:
        return {}


class FunctionStage(Stage):
    """A plain function ``frame -> frame | None`` as a stage."""

    def __init__(self, fn: Callable[[Frame], Frame | None], name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "function")

    def process(self, frame: Frame) -> Frame | None:
        return self.fn(frame)


# --- queues -----------------------------------------------------------------------------------

class FrameQueue:
    """A bounded FIFO. ``latest``: a put into a full queue pushes the oldest item out (counted in
    ``dropped``); ``block``: a put waits for room. The end marker is always accepted."""

    def __init__(self, maxsize: int, policy: DropPolicy = "block"):
        if maxsize < 1:
            raise UserError(f"queue size must be at least 1, got {maxsize}")
        if policy not in DROP_POLICIES:
            raise UserError(f"drop policy {policy!r} is not known; expected one of {DROP_POLICIES}")
        self.maxsize, self.policy = maxsize, policy
        self.dropped = 0
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Frame) -> Frame | None:
        """Add ``item``; return the frame pushed out to make room, if any."""
        with self._cond:
            pushed_out = None
            if not item.final:
                while len(self._items) >= self.maxsize and not self._closed:
                    if self.policy == "latest":
                        pushed_out = self._items.popleft()
                        self.dropped += 1
                        break
                    self._cond.wait(0.1)
            self._items.append(item)
            self._cond.notify_all()
            return pushed_out

    def get(self, timeout: float = 0.1) -> Frame | None:
        """The oldest item, or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake and release every waiter (the pipeline is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


# --- metrics ----------------------------------------------------------------------------------

_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12)


def _percentiles(values: Iterable[float]) -> dict[str, float | None]:
    arr = np.fromiter(values, float)
    if not arr.size:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None}
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "mean_ms": float(arr.mean())}


class PipelineMetrics:
    """Counters and latency windows of one pipeline, mirrored into a Prometheus registry.

    Latency percentiles are over the last ``window`` frames; FPS over the last 2 seconds.
    """

    def __init__(self, name: str, stages: list[str], *, window: int = 4096):
        self.name, self.stage_names = name, stages
        self.captured = self.processed = self.dropped = self.events = self.reconnects = 0
        self.stage_ms: dict[str, deque] = {s: deque(maxlen=window) for s in stages}
        self.e2e_ms: deque = deque(maxlen=window)
        self._out_times: deque = deque(maxlen=512)
        self.t_start = time.perf_counter()
        self.t_end: float | None = None  # when the end-of-stream marker reached the sinks
        self._lock = threading.Lock()
        self.registry = None
        self._prom: dict[str, Any] = {}
        try:
            self._init_prometheus()
        except ImportError:
            log.info("prometheus_client not installed: metrics kept in memory only")

    def _init_prometheus(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        lab = ["pipeline"]
        self._prom = {
            "captured": Counter("edgedeploy_pipeline_frames_captured", "Frames delivered by the source", lab, registry=r),
            "processed": Counter("edgedeploy_pipeline_frames_processed", "Frames through every stage", lab, registry=r),
            "dropped": Counter("edgedeploy_pipeline_frames_dropped",
                               "Frames dropped by the drop policy (latest-frame-wins)", lab, registry=r),
            "events": Counter("edgedeploy_pipeline_events", "Events emitted to the sinks", lab, registry=r),
            "reconnects": Counter("edgedeploy_pipeline_source_reconnects", "Source reconnections", lab, registry=r),
            "stage": Histogram("edgedeploy_pipeline_stage_latency_seconds", "Time in each stage",
                               ["pipeline", "stage"], buckets=_BUCKETS, registry=r),
            "e2e": Histogram("edgedeploy_pipeline_end_to_end_latency_seconds",
                             "Capture to sinks done", lab, buckets=_BUCKETS, registry=r),
            "fps": Gauge("edgedeploy_pipeline_fps", "Frames processed per second, last 2 s", lab, registry=r),
        }

    def _inc(self, key: str, n: int = 1) -> None:
        if self._prom and n:
            self._prom[key].labels(self.name).inc(n)

    def on_capture(self) -> None:
        with self._lock:
            self.captured += 1
        self._inc("captured")

    def on_drop(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n
        self._inc("dropped", n)

    def on_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1
        self._inc("reconnects")

    def on_stage(self, stage: str, ms: float) -> None:
        self.stage_ms[stage].append(ms)
        if self._prom:
            self._prom["stage"].labels(self.name, stage).observe(ms / 1e3)

    def on_output(self, frame: Frame, now: float) -> None:
        with self._lock:
            self.events += len(frame.events)
            if frame.final:
                self.t_end = now
            else:
                self.processed += 1
                self.e2e_ms.append((now - frame.t_capture) * 1e3)
                self._out_times.append(now)
        self._inc("events", len(frame.events))
        if not frame.final and self._prom:
            self._prom["processed"].labels(self.name).inc()
            self._prom["e2e"].labels(self.name).observe(now - frame.t_capture)
            self._prom["fps"].labels(self.name).set(self.fps(now))

    def fps(self, now: float | None = None) -> float:
        """Frames processed per second over the last 2 s."""
        now = time.perf_counter() if now is None else now
        recent = [t for t in list(self._out_times) if now - t <= 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def snapshot(self) -> dict:
        """Counts, FPS and latency percentiles (ms) as plain data."""
        elapsed = (self.t_end or time.perf_counter()) - self.t_start
        return {
            "pipeline": self.name, "elapsed_s": elapsed,
            "captured": self.captured, "processed": self.processed, "dropped": self.dropped,
            "events": self.events, "reconnects": self.reconnects,
            "fps": self.fps(), "mean_fps": self.processed / elapsed if elapsed > 0 else 0.0,
            "capture_fps": self.captured / elapsed if elapsed > 0 else 0.0,
            "end_to_end": _percentiles(self.e2e_ms),
            "stages": {s: _percentiles(v) for s, v in self.stage_ms.items()},
        }

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose the metrics at ``http://addr:port/metrics`` for Prometheus to scrape."""
        if self.registry is None:
            raise UserError("serving metrics needs prometheus_client: pip install prometheus-client")
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise UserError(f"cannot serve metrics on {addr}:{port}: {exc}; choose a free --metrics-port") from exc


# --- the pipeline -----------------------------------------------------------------------------

@dataclass
class PipelineReport:
    """What one run did: the final metrics snapshot, the source's report (reconnects, errors)
    and each sink's report (delivered, spooled, dropped...). ``events``: every event emitted."""

    stats: dict
    source: dict
    sinks: dict[str, dict]
    events: list[dict]
    stopped_by: str

    def to_dict(self) -> dict:
        return {"stats": self.stats, "source": self.source, "sinks": self.sinks,
                "events": self.events, "stopped_by": self.stopped_by}


class Pipeline:
    """``Pipeline(source, stages, sinks).run()``: see the module docstring.

    queue_size: frames each queue holds (the first one is where frames are dropped).
    drop: ``latest`` (latest-frame-wins) or ``block``; None picks ``latest`` for live sources
    (cameras, streams, files played in real time) and ``block`` for files read offline.
    """

    def __init__(self, source, stages: list[Stage], sinks: list[Sink] = (), *, name: str = "pipeline",
                 queue_size: int = 1, drop: DropPolicy | None = None):
        self.source, self.stages, self.sinks = source, list(stages), list(sinks)
        self.name = name
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise UserError(f"stage names must be unique, got {names}; give repeated stages a 'name'")
        policy = drop or ("latest" if getattr(source, "live", False) else "block")
        self.queues = [FrameQueue(queue_size, policy)] + [FrameQueue(queue_size, "block") for _ in self.stages]
        self.metrics = PipelineMetrics(name, names)
        if hasattr(source, "on_reconnect"):
            source.on_reconnect = self.metrics.on_reconnect
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._events: list[dict] = []
        self._done = threading.Event()
        self._stopped_by = "end of stream"

    @property
    def drop_policy(self) -> str:
        return self.queues[0].policy

    def stage(self, name: str) -> Stage | None:
        """The stage called ``name`` (stages find each other through this in ``open``)."""
        return next((s for s in self.stages if s.name == name), None)

    def stats(self) -> dict:
        snap = self.metrics.snapshot()
        snap["drop_policy"] = self.drop_policy
        return snap

    def stop(self, why: str = "stopped") -> None:
        """Ask every thread to finish: the source stops, what is in flight drains to the sinks."""
        if not self._stop.is_set():
            self._stopped_by = why
        self._stop.set()

    # threads ---------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._stop.set()
        for q in self.queues:
            q.close()

    def _source_loop(self, max_frames: int | None) -> None:
        q = self.queues[0]
        try:
            n = 0
            for frame in self.source.frames(self._stop):
                if self._stop.is_set():
                    break
                self.metrics.on_capture()
                if q.put(frame) is not None:
                    self.metrics.on_drop()
                n += 1
                if max_frames is not None and n >= max_frames:
                    self.stop(f"max_frames={max_frames}")
                    break
        except BaseException as exc:  # noqa: BLE001 — re-raised by run()
            self._fail(exc)
        finally:
            q.put(Frame(-1, None, final=True))

    def _stage_loop(self, i: int) -> None:
        stage, inq, outq = self.stages[i], self.queues[i], self.queues[i + 1]
        try:
            while True:
                frame = inq.get()
                if frame is None:
                    if self._errors:
                        return
                    continue
                if frame.final:
                    outq.put(stage.finish(frame))
                    return
                t = time.perf_counter()
                result = stage.process(frame)
                ms = (time.perf_counter() - t) * 1e3
                self.metrics.on_stage(stage.name, ms)
                if result is not None:
                    result.timings[stage.name] = ms
                    outq.put(result)
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            stage.close()

    def _sink_loop(self) -> None:
        q = self.queues[-1]
        try:
            while True:
                frame = q.get()
                if frame is None:
                    if self._errors:
                        return
                    continue
                for sink in self.sinks:
                    sink.write(frame)
                self._events.extend(frame.events)
                self.metrics.on_output(frame, time.perf_counter())
                if frame.final:
                    return
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)

    def run(self, *, max_frames: int | None = None, duration: float | None = None,
            on_stats: Callable[[dict], None] | None = None, stats_every: float = 2.0) -> PipelineReport:
        """Run until the source ends, ``max_frames`` are captured or ``duration`` seconds pass.

        ``on_stats(stats)`` is called every ``stats_every`` seconds (live reporting). Errors in
        any thread stop the pipeline and are raised here.
        """
        # Models load before the first frame is captured: loading is not latency.
        opened = []
        try:
            for stage in self.stages:
                stage.open(self)
                opened.append(stage)
            for sink in self.sinks:
                sink.open()
        except BaseException:
            for stage in opened:
                stage.close()
            raise
        threads = [threading.Thread(target=self._source_loop, args=(max_frames,), name="source", daemon=True)]
        threads += [threading.Thread(target=self._stage_loop, args=(i,), name=f"stage-{s.name}", daemon=True)
                    for i, s in enumerate(self.stages)]
        threads.append(threading.Thread(target=self._sink_loop, name="sinks", daemon=True))
        self.metrics.t_start = time.perf_counter()
        for t in threads:
            t.start()
        deadline = None if duration is None else time.perf_counter() + duration
        next_stats = time.perf_counter() + stats_every
        try:
            while threads[-1].is_alive():
                threads[-1].join(0.1)
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    self.stop(f"duration={duration:g}s")
                if on_stats is not None and now >= next_stats:
                    on_stats(self.stats())
                    next_stats = now + stats_every
        except KeyboardInterrupt:
            self.stop("interrupted")
            threads[-1].join(10)
        for t in threads:
            t.join(5)
        reports = {}
        for sink in self.sinks:
            reports[sink.name] = sink.close()
        source_report = getattr(self.source, "report", lambda: {})()
        close = getattr(self.source, "close", None)
        if close:
            close()
        if self._errors:
            raise self._errors[0]
        return PipelineReport(self.stats(), source_report, reports, list(self._events), self._stopped_by)


# --- small generic stages ---------------------------------------------------------------------

class ResizeStage(Stage):
    """Preprocess: crop a region of interest (fractions of the frame) and/or scale the frame.

    The full-resolution frame stays in ``frame.data["full"]`` with the crop's offset and the scale
    in ``frame.data["roi"] = (x0, y0, scale)``, so later stages can map boxes back."""

    name = "resize"

    def __init__(self, *, roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0), scale: float = 1.0,
                 name: str = "resize"):
        x0, y0, x1, y1 = roi
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise UserError(f"roi {roi} must be (x0, y0, x1, y1) fractions of the frame with x0<x1, y0<y1")
        if not 0 < scale <= 4:
            raise UserError(f"scale {scale} must be in (0, 4]")
        self.roi, self.scale, self.name = roi, scale, name

    def process(self, frame: Frame) -> Frame:
        import cv2

        h, w = frame.image.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in (self.roi[0] * w, self.roi[1] * h, self.roi[2] * w, self.roi[3] * h))
        frame.data.setdefault("full", frame.image)
        img = frame.image[y0:y1, x0:x1]
        if self.scale != 1.0:
            img = cv2.resize(img, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        frame.data["roi"] = (x0, y0, self.scale)
        frame.image = np.ascontiguousarray(img)
        return frame


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a is not None and a >= b, ">": lambda a, b: a is not None and a > b,
    "<=": lambda a, b: a is not None and a <= b, "<": lambda a, b: a is not None and a < b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "matches": lambda a, b: a is not None and __import__("re").search(str(b), str(a)) is not None,
}


class RuleStage(Stage):
    """A rule on events: keep (``action="keep"``) or drop (``"drop"``) the events whose
    ``field`` compares true with ``value``, or ``"tag"`` them (``event["rules"]`` lists the
    rules that matched). E.g. keep events with ``confidence >= 0.6``."""

    def __init__(self, *, field: str, op: str, value: Any, action: str = "keep", name: str = "rule"):
        if op not in _OPS:
            from edgedeploy.errors import did_you_mean

            raise UserError(f"rule op {op!r} is not known{did_you_mean(op, _OPS)}; use one of {', '.join(_OPS)}")
        if action not in ("keep", "drop", "tag"):
            raise UserError(f"rule action {action!r} is not known; use keep, drop or tag")
        self.field, self.op, self.value, self.action, self.name = field, op, value, action, name
        self.filtered = 0

    def _apply(self, frame: Frame) -> Frame:
        kept = []
        for event in frame.events:
            hit = _OPS[self.op](event.get(self.field), self.value)
            if self.action == "tag":
                if hit:
                    event.setdefault("rules", []).append(self.name)
                kept.append(event)
            elif hit == (self.action == "keep"):
                kept.append(event)
        self.filtered += len(frame.events) - len(kept)
        frame.events = kept
        return frame

    def process(self, frame: Frame) -> Frame:
        return self._apply(frame)

    def finish(self, end: Frame) -> Frame:
        return self._apply(end)

