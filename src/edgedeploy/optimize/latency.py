"""Latency of several candidate plans, measured interleaved in one process.

Method: every candidate :class:`~edgedeploy.plan.DeploymentPlan` is opened (tuned, or the
engine's anchor for an ``untuned`` plan, e.g. ``onnxruntime.InferenceSession(path)``), then
``rounds`` rounds time each candidate in turn with :func:`edgedeploy.engines.timing.time_runs`:
2 untimed runs, then ``block`` timed runs. Interleaving spreads load from other processes
evenly over the candidates, so their ratios stay fair on a busy machine; the figure is the
median of all timed runs (and the minimum, the least disturbed run, is kept too). The
benchmark harness (``edgedeploy.benchmarking``) measures one plan per fresh process, one after
another — better for memory and cold start, worse for A/B under shared load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.engines import EngineOptions
from edgedeploy.engines.timing import Timing, merge, time_runs
from edgedeploy.plan import DeploymentPlan, ModelFile

METHOD = "in-process, interleaved: {rounds} rounds x {block} timed runs per candidate after 2 warm-up runs each; " \
         "median of all timed runs (the minimum is kept in the JSON); {threads} threads"


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

    @classmethod
    def of(cls, timing: Timing) -> Latency:
        return cls(timing.stat("p50"), timing.stat("min"), timing.runs)

    def to_dict(self) -> dict:
        return {"median_ms": round(self.median_ms, 3), "min_ms": round(self.min_ms, 3), "runs": self.runs}


def measure(plans: dict[str, DeploymentPlan], x: np.ndarray, *, rounds: int = 5, block: int = 5,
            progress: Callable[[str], None] | None = None) -> dict[str, Latency]:
    """Label → :class:`Latency` for each plan on input ``x`` (fed to each model's first input)."""
    sessions = {}
    for label, plan in plans.items():
        s = plan.open()
        sessions[label] = (s, {s.inputs[0].name: x})
    blocks: dict[str, list[Timing]] = {k: [] for k in sessions}
    for r in range(rounds):
        if progress:
            progress(f"latency round {r + 1}/{rounds}")
        for label, (s, feeds) in sessions.items():
            blocks[label].append(time_runs(s.run, feeds, runs=block, warmup=2))
    for s, _ in sessions.values():
        s.release()
    return {k: Latency.of(merge(v)) for k, v in blocks.items()}


def method(*, threads: int = 2, rounds: int = 5, block: int = 5) -> str:
    return METHOD.format(rounds=rounds, block=block, threads=threads)
