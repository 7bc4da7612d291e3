"""A pipeline's latency budget: the frame interval (40 ms at 25 FPS) shared among its stages.

Each stage has a share of the interval: its ``budget_share`` (the model stages declare one),
or what ``Budget.shares`` gives it by name, or an equal part of what the others leave. The
report says per stage its budget in ms, what it took (p50, p99, mean over the run) and the
share of its budget it used; a stage whose p50 is over its budget is ``over``, and the report
names the switches that stage has left to keep up (:meth:`~edgedeploy.pipelines.stage.Stage.speedups`).
The pipeline keeps up with the source when every stage's mean fits in one interval (stages run
concurrently, each in its own thread).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgedeploy.errors import UserError

DEFAULT_FPS = 25.0


@dataclass(frozen=True, kw_only=True)
class Budget:
    """fps: the frame rate the budget is for (None: the source's, else 25); shares: stage name →
    fraction of the frame interval, overriding the stages' own ``budget_share``."""

    fps: float | None = None
    shares: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.fps is not None and self.fps <= 0:
            raise UserError(f"budget fps = {self.fps}: expected a positive frame rate")
        bad = {k: v for k, v in self.shares.items() if not 0 < v <= 1}
        if bad:
            raise UserError(f"budget shares {bad}: each is a fraction of the frame interval in (0, 1]")


def shares(stages: Iterable, given: Mapping[str, float] | None = None) -> dict[str, float]:
    """Stage name → share of the frame interval: ``given``, else the stage's ``budget_share``,
    else an equal part of what is left (nothing left: the undeclared stages share nothing)."""
    given = dict(given or {})
    names = [s.name for s in stages]
    unknown = [k for k in given if k not in names]
    if unknown:
        raise UserError(f"budget share for {unknown[0]!r}, which is not a stage; stages: {', '.join(names)}")
    out = {s.name: given.get(s.name, getattr(s, "budget_share", None)) for s in stages}
    declared = sum(v for v in out.values() if v is not None)
    if declared > 1 + 1e-9:
        raise UserError(f"the stages' budget shares add up to {declared:.2f} of the frame interval; at most 1")
    rest = [k for k, v in out.items() if v is None]
    for k in rest:
        out[k] = (1 - declared) / len(rest)
    return out


def _stat(values, q: float | None = None) -> float | None:
    arr = np.fromiter(values, float)
    if not arr.size:
        return None
    return float(arr.mean() if q is None else np.percentile(arr, q))


def report(stage_ms: Mapping[str, Iterable[float]], stages: list, *, fps: float,
           given: Mapping[str, float] | None = None) -> dict:
    """The budget report for ``stages`` whose per-frame times (ms) are ``stage_ms``; see the module docstring."""
    interval = 1000.0 / fps
    split = shares(stages, given)
    rows = []
    for s in stages:
        values = list(stage_ms.get(s.name, ()))
        p50, p99, mean = _stat(values, 50), _stat(values, 99), _stat(values)
        budget = split[s.name] * interval
        over = p50 is not None and p50 > budget
        rows.append({"stage": s.name, "share": split[s.name], "budget_ms": budget, "p50_ms": p50, "p99_ms": p99,
                     "mean_ms": mean, "used": (mean / budget) if mean is not None and budget > 0 else None,
                     "over": over, "switches_left": s.speedups() if over and hasattr(s, "speedups") else []})
    means = [r["mean_ms"] for r in rows if r["mean_ms"] is not None]
    return {"fps": fps, "interval_ms": interval, "stages": rows,
            "sum_p50_ms": sum(r["p50_ms"] for r in rows if r["p50_ms"] is not None),
            "keeps_up": all(m <= interval for m in means)}


def lines(budget: dict) -> list[str]:
    """The report as text lines, one per stage."""
    out = [f"frame interval {budget['interval_ms']:.0f} ms ({budget['fps']:g} FPS); stages' p50 add up to "
           f"{budget['sum_p50_ms']:.1f} ms; {'keeps up' if budget['keeps_up'] else 'falls behind'}"]
    for r in budget["stages"]:
        used = "all" if r["used"] is None else f"{r['used']:.0%}"
        took = "no frames" if r["p50_ms"] is None else (
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, mean {r['mean_ms']:.1f} ms = {used} of its budget")
        hint = f" — over: try {', '.join(r['switches_left'])}" if r["switches_left"] else (
            " — over" if r["over"] else "")
        out.append(f"{r['stage']}: {r['share']:.0%} of the interval = {r['budget_ms']:.1f} ms; {took}{hint}")
    return out
