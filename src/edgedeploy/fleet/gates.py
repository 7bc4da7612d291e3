"""The device's own checks after a swap: the gate metrics a rollout plan may limit, and measuring them.

"Loads" is always checked (the hot swap loads, warms up and compares the new version before it
serves). The plan may add limits on the metrics in :data:`METRICS`; the device measures each on
the version it now serves and the rollout's stage passes on that device only if every one holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgedeploy.fleet.artifacts import GOLDEN, read_golden

METRICS: dict[str, str] = {
    "golden_max_diff": "largest |output - reference| on the artifact's golden input (golden.npz)",
    "p99_ms": "99th percentile latency of the golden (or warm-up) input, ms, measured after the swap",
    "p50_ms": "median latency of the same runs, ms",
    "rss_mb": "resident memory of the serving process after the swap, MiB",
    "error_rate": "failed / all inferences served since the swap (0..1)",
}


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def measure(session, path: Path, warmup: dict | None, limits: dict[str, float], *,
            runs: int = 20) -> tuple[dict[str, float], list[str]]:
    """Measure the gated metrics on a loaded ``session`` of the version in ``path`` (before it
    serves): golden input against the reference, latency over ``runs`` runs, RSS.
    ``error_rate`` is read later, after the swap. Returns (figures, failures)."""
    from edgedeploy.serving.memory import rss_bytes, warmup_feeds

    figures: dict[str, float] = {}
    failures: list[str] = []
    golden = path / GOLDEN
    feeds, reference = read_golden(golden) if golden.is_file() else (warmup_feeds(session, warmup), {})
    if "golden_max_diff" in limits:
        if not reference:
            failures.append("golden_max_diff: the artifact has no golden.npz to compare with")
        else:
            got = session.run(feeds)
            missing = sorted(set(reference) - set(got))
            if missing:
                failures.append(f"golden_max_diff: outputs {missing} missing from the model's outputs")
            else:
                figures["golden_max_diff"] = max(
                    float(np.max(np.abs(got[k].astype(np.float64) - ref))) if got[k].shape == ref.shape else float("inf")
                    for k, ref in reference.items())
    times = []
    for _ in range(runs if {"p99_ms", "p50_ms"} & set(limits) else 0):
        t0 = time.perf_counter()
        session.run(feeds)
        times.append((time.perf_counter() - t0) * 1000)
    if times:
        figures["p50_ms"], figures["p99_ms"] = percentile(times, 50), percentile(times, 99)
    figures["rss_mb"] = rss_bytes() / 2**20
    for metric, limit in limits.items():
        value = figures.get(metric)
        if metric != "error_rate" and value is not None and not value <= limit:
            failures.append(f"{metric} {value:.4g} > {limit:g}")
    return figures, failures
