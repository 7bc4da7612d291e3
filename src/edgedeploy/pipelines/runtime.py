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
from dataclasses import dataclass, field
from typing import Callable

from edgedeploy.errors import UserError
from edgedeploy.pipelines import budget as budgets
from edgedeploy.pipelines.metrics import PipelineMetrics
from edgedeploy.pipelines.queues import DropPolicy, FrameQueue
from edgedeploy.pipelines.stage import Frame, Sink, Stage

log = logging.getLogger(__name__)


@dataclass
class PipelineReport:
    """What one run did: the final metrics snapshot, the source's report (reconnects, errors)
    and each sink's report (delivered, spooled, dropped...). ``events``: every event emitted.
    ``stats["budget"]`` is the latency-budget report (:mod:`~edgedeploy.pipelines.budget`)."""

    stats: dict
    source: dict
    sinks: dict[str, dict]
    events: list[dict]
    stopped_by: str
    startup: list[dict] = field(default_factory=list)  # per model stage: the plan it opened, and why

    def to_dict(self) -> dict:
        return {"stats": self.stats, "source": self.source, "sinks": self.sinks,
                "events": self.events, "stopped_by": self.stopped_by, "startup": self.startup}


class Pipeline:
    """``Pipeline(source, stages, sinks).run()``: see the module docstring.

    queue_size: frames each queue holds (the first one is where frames are dropped).
    drop: ``latest`` (latest-frame-wins) or ``block``; None picks ``latest`` for live sources
    (cameras, streams, files played in real time) and ``block`` for files read offline.
    budget: the frame rate and stage shares of the latency budget (:class:`~edgedeploy.pipelines.budget.Budget`).
    trusted_keys: public keys (or ``.pub`` paths) a stage's deployment directory must be signed with.
    """

    def __init__(self, source, stages: list[Stage], sinks: list[Sink] = (), *, name: str = "pipeline",
                 queue_size: int = 1, drop: DropPolicy | None = None, budget: budgets.Budget | None = None,
                 trusted_keys=None):
        self.source, self.stages, self.sinks = source, list(stages), list(sinks)
        self.name, self.budget, self.trusted_keys = name, budget or budgets.Budget(), trusted_keys
        budgets.shares(self.stages, self.budget.shares)  # a share for a stage that is not there: say so now
        self.startup: list[dict] = []
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

    @property
    def fps(self) -> float:
        """The frame rate the budget is for: the budget's, else the source's, else 25."""
        return self.budget.fps or getattr(self.source, "fps", None) or budgets.DEFAULT_FPS

    def stats(self) -> dict:
        snap = self.metrics.snapshot()
        snap["drop_policy"] = self.drop_policy
        snap["budget"] = budgets.report({k: list(v) for k, v in self.metrics.stage_ms.items()}, self.stages,
                                        fps=self.fps, given=self.budget.shares)
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
            on_stats: Callable[[dict], None] | None = None, stats_every: float = 2.0,
            on_start: Callable[[list[dict]], None] | None = None) -> PipelineReport:
        """Run until the source ends, ``max_frames`` are captured or ``duration`` seconds pass.

        ``on_start(startup)`` is called once the models are open, before the first frame, with the
        start-up report (each model stage's plan and why); ``on_stats(stats)`` every
        ``stats_every`` seconds (live reporting). Errors in any thread stop the pipeline and are
        raised here.
        """
        # Models load before the first frame is captured: loading is not latency.
        split = budgets.shares(self.stages, self.budget.shares)
        for stage in self.stages:  # each stage's share of the frame interval, for stages that pace themselves
            stage.budget_ms = split[stage.name] * 1000.0 / self.fps
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
        # The start-up report: which plan each model stage opened, and why (a measured choice, a deployment).
        self.startup = [s.opened.to_dict() for s in self.stages if getattr(s, "opened", None) is not None]
        for s in self.stages:
            if getattr(s, "opened", None) is not None:
                log.info("%s: %s", self.name, s.opened.line())
        if on_start is not None:
            on_start(self.startup)
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
        return PipelineReport(self.stats(), source_report, reports, list(self._events), self._stopped_by,
                              self.startup)
