"""What a running pipeline measures: per-stage and end-to-end latency, frames captured /
processed / dropped, FPS; kept in memory and mirrored into a Prometheus registry of its own."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Iterable

import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.pipelines.stage import Frame

log = logging.getLogger(__name__)

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
