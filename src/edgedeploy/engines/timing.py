"""The one latency helper: time a run function, summarise the runs, say how sure the figure is.

Every timing figure in edgedeploy (``run``, parity, doctor, the optimiser's interleaved A/B,
the benchmark worker) comes from :func:`time_runs`, so they mean the same thing.

**Noise band.** A statistic of the timed runs (p50, p90, p99) is reported with its
distribution-free 95% confidence interval: the order statistics that bracket the quantile
with 95% probability under the binomial distribution of how many runs fall below it
(no assumption about the shape of the latency distribution). A latency *target* is met only
when the interval's upper end is at or below it (:meth:`Timing.upper`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
STATISTICS = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def quantile_interval(times_ms, q: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) distribution-free confidence interval of the ``q``-th percentile of ``times_ms``.

    With n runs, the number below the true quantile is Binomial(n, q/100); the interval is
    the pair of order statistics holding ``confidence`` of that distribution. Too few runs
    for the bound to exist (e.g. p99 of 10 runs): the extreme run is the bound.
    """
    x = np.sort(np.asarray(times_ms, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("no runs to summarise")
    lo, hi = stats.binom.interval(confidence, n, q / 100)  # runs below the true quantile: Binomial(n, q)
    lo_i = int(min(max(lo - 1, 0), n - 1))
    hi_i = int(min(max(hi, 0), n - 1))
    return float(x[lo_i]), float(x[hi_i])


@dataclass(frozen=True)
class Timing:
    """Per-run wall times (ms) of timed runs, and the seconds the timed phase took."""

    times_ms: tuple[float, ...]
    wall_s: float

    @property
    def runs(self) -> int:
        return len(self.times_ms)

    def stat(self, name: str = "p50") -> float:
        """``p50``/``p90``/``p99``, or ``mean``/``std``/``min``/``max``."""
        t = np.asarray(self.times_ms)
        if name in STATISTICS:
            return float(np.percentile(t, STATISTICS[name]))
        return float(getattr(t, name)())

    def interval(self, name: str = "p50") -> tuple[float, float]:
        return quantile_interval(self.times_ms, STATISTICS[name])

    def upper(self, name: str = "p50") -> float:
        """The upper end of the 95% interval of ``name``: what a latency target is judged by."""
        return self.interval(name)[1]

    def to_dict(self) -> dict:
        """``p50``, ``p90``, ``p99``, ``mean``, ``std``, ``min``, ``max``, ``runs``, and for each percentile its
        95% interval as ``p50_low``/``p50_high`` (ms)."""
        out = {k: self.stat(k) for k in (*STATISTICS, "mean", "std", "min", "max")}
        for k in STATISTICS:
            out[f"{k}_low"], out[f"{k}_high"] = self.interval(k)
        out["runs"] = self.runs
        return out


def time_runs(run: Callable[[dict], object], feeds: dict, *, runs: int, warmup: int = 0,
              budget_s: float | None = None, min_runs: int = 3) -> Timing:
    """``warmup`` untimed calls of ``run(feeds)``, then timed calls until ``runs`` are done or
    ``budget_s`` seconds have passed (at least ``min(runs, min_runs)`` timed calls either way)."""
    for _ in range(warmup):
        run(feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs:
        if budget_s is not None and time.perf_counter() - start >= budget_s and len(times) >= min(runs, min_runs):
            break
        t = time.perf_counter()
        run(feeds)
        times.append((time.perf_counter() - t) * 1000)
    return Timing(tuple(times), time.perf_counter() - start)


def merge(timings: list[Timing]) -> Timing:
    """One :class:`Timing` from several blocks of runs (e.g. interleaved rounds)."""
    return Timing(tuple(t for x in timings for t in x.times_ms), sum(x.wall_s for x in timings))
