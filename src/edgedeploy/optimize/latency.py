"""Latency of several candidate plans, measured interleaved in one process.

Method: every candidate :class:`~edgedeploy.plan.DeploymentPlan` is opened (tuned, or the
engine's anchor for an ``untuned`` plan, e.g. ``onnxruntime.InferenceSession(path)``), then
``rounds`` rounds time each candidate in turn with :func:`edgedeploy.engines.timing.time_runs`:
2 untimed runs, then ``block`` timed runs. Interleaving spreads load from other processes
evenly over the candidates, so their ratios stay fair on a busy machine; the figure is the
median of all timed runs with its 95% interval (and the minimum, the least disturbed run, is
kept too). Before each block the process sleeps :data:`SETTLE_S`, so worker threads the
previous candidate left spinning (ONNX Runtime spins after a run by default) have gone idle
and cannot slow the next candidate. The
benchmark harness (``edgedeploy.benchmarking``) measures one plan per fresh process, one after
another — better for memory and cold start, worse for A/B under shared load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.engines import EngineOptions
from edgedeploy.engines.timing import Timing, merge, time_runs
from edgedeploy.plan import DeploymentPlan, ModelFile

SETTLE_S = 0.05  # well beyond ORT's spin-then-block wait: the previous candidate's threads are asleep
METHOD = "in-process, interleaved: {rounds} rounds x {block} timed runs per candidate after 2 warm-up runs each " \
         "and a 50 ms pause (spinning threads of the previous candidate go idle); median of all timed runs with its " \
         "95% interval (the minimum is kept in the JSON); {threads} threads"


def plan_for(path: str | Path, engine: str, *, threads: int = 2, anchor: bool = False,
             precision: str = "fp32") -> DeploymentPlan:
    """The plan the optimiser times: ``path`` on ``engine`` at ``threads`` (``anchor``: the engine's defaults).
    ``precision`` records what the file is (``int8`` for a quantized file); the engine runs it as it is."""
    return DeploymentPlan(engine=engine, precision=precision, model=ModelFile.of(path), untuned=anchor,
                          options=EngineOptions(threads=None if anchor else threads))


@dataclass
class Latency:
    median_ms: float
    min_ms: float
    runs: int
    interval: tuple[float, float] = (0.0, 0.0)  # 95% interval of the median (ms)
    memory_mb: float | None = None  # resident memory the session added (open + first run), in this process

    @classmethod
    def of(cls, timing: Timing, memory_mb: float | None = None) -> Latency:
        return cls(timing.stat("p50"), timing.stat("min"), timing.runs, timing.interval("p50"), memory_mb)

    def to_dict(self) -> dict:
        return {"median_ms": round(self.median_ms, 3), "min_ms": round(self.min_ms, 3), "runs": self.runs,
                "p50_low": round(self.interval[0], 3), "p50_high": round(self.interval[1], 3),
                "memory_mb": None if self.memory_mb is None else round(self.memory_mb, 1)}


def measure(plans: dict[str, DeploymentPlan], x: np.ndarray, *, rounds: int = 5, block: int = 5,
            progress: Callable[[str], None] | None = None) -> dict[str, Latency]:
    """Label → :class:`Latency` for each plan on input ``x`` (fed to each model's first input); its memory is
    the growth of this process's resident set while the session opened and ran once (sessions opened one
    after another, so each figure is that session's own, engine libraries loaded by the first excepted)."""
    import psutil

    proc = psutil.Process()
    sessions, memory = {}, {}
    for label, plan in plans.items():
        before = proc.memory_info().rss
        s = plan.open()
        sessions[label] = (s, {s.inputs[0].name: x})
        s.run(sessions[label][1])
        memory[label] = max(proc.memory_info().rss - before, 0) / 2**20
    blocks: dict[str, list[Timing]] = {k: [] for k in sessions}
    for r in range(rounds):
        if progress:
            progress(f"latency round {r + 1}/{rounds}")
        for label, (s, feeds) in sessions.items():
            time.sleep(SETTLE_S)
            blocks[label].append(time_runs(s.run, feeds, runs=block, warmup=2))
    for s, _ in sessions.values():
        s.release()
    return {k: Latency.of(merge(v), memory[k]) for k, v in blocks.items()}


def method(*, threads: int = 2, rounds: int = 5, block: int = 5) -> str:
    return METHOD.format(rounds=rounds, block=block, threads=threads)
