"""A/B tests: split one model's traffic between a baseline and a candidate version, keep each
variant's latency, errors and agreement with the baseline, and judge them with a statistical test.

Routing is by weight (the candidate's share), sticky when the request carries a key: the same
key always lands on the same variant (sha256 of the key, not Python's per-process ``hash``).
Agreement: a request served by the candidate is also run on the baseline after its response has
gone (a shadow run, off the request's path) and the two outputs are compared.

Tests used by :func:`report`: Mann–Whitney U (two-sided, normal approximation with tie
correction) on latencies; a pooled two-proportion z-test on error rates; a Wilson interval on
the agreement rate.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edgedeploy.errors import UserError

VARIANTS = ("baseline", "candidate")
MAX_SAMPLES = 20_000  # latencies kept per variant (the most recent)


@dataclass
class VariantStats:
    version: int
    requests: int = 0
    errors: int = 0
    compared: int = 0  # candidate only: shadow comparisons with the baseline
    agreed: int = 0
    max_diff: float = 0.0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    def to_dict(self) -> dict:
        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "compared": self.compared, "agreed": self.agreed, "max_diff": self.max_diff,
                "latencies_ms": [round(x, 3) for x in self.latencies_ms]}


class ABTest:
    """Traffic of ``model`` split between ``baseline`` and ``candidate`` versions.

    weight: the candidate's share of traffic, 0..1. shadow: compare candidate outputs with the
    baseline's on the same input (costs one extra baseline run per candidate request).
    """

    def __init__(self, model: str, baseline: int, candidate: int, *, weight: float = 0.5, shadow: bool = True,
                 seed: int | None = None):
        if not 0.0 <= weight <= 1.0:
            raise UserError(f"A/B weight {weight} is not a share; expected 0..1 (the candidate's share of traffic)")
        if baseline == candidate:
            raise UserError(f"A/B test of {model}: baseline and candidate are both version {baseline}; pick two versions")
        self.model, self.weight, self.shadow = model, weight, shadow
        self.started = time.time()
        self.stats = {"baseline": VariantStats(baseline), "candidate": VariantStats(candidate)}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def version(self, variant: str) -> int:
        return self.stats[variant].version

    def route(self, key: str | None = None) -> str:
        """'baseline' or 'candidate' for one request; the same ``key`` always gets the same answer."""
        if key is None:
            with self._lock:
                u = self._rng.random()
        else:
            u = int.from_bytes(hashlib.sha256(f"{self.model}\0{key}".encode()).digest()[:8], "big") / 2**64
        return "candidate" if u < self.weight else "baseline"

    def record(self, variant: str, latency_ms: float, ok: bool) -> None:
        with self._lock:
            s = self.stats[variant]
            s.requests += 1
            if ok:
                s.latencies_ms.append(latency_ms)
            else:
                s.errors += 1

    def record_agreement(self, agree: bool, diff: float) -> None:
        with self._lock:
            s = self.stats["candidate"]
            s.compared += 1
            s.agreed += agree
            s.max_diff = max(s.max_diff, diff)

    def to_dict(self) -> dict:
        with self._lock:
            return {"model": self.model, "weight": self.weight, "shadow": self.shadow, "started": self.started,
                    "variants": {k: v.to_dict() for k, v in self.stats.items()}}


def compare_outputs(reference: dict[str, np.ndarray], other: dict[str, np.ndarray],
                    *, rtol: float = 1e-2, atol: float = 1e-3) -> tuple[bool, float]:
    """Do two runs agree? Every output must have the same shape and be within ``atol + rtol·max|ref|``,
    or — for scores over classes (last axis > 1) — pick the same class in every row.
    Returns (agree, max |difference|)."""
    agree, worst = True, 0.0
    for name, ref in reference.items():
        out = other.get(name)
        if out is None or out.shape != ref.shape:
            return False, math.inf
        if ref.size == 0:
            continue
        r, o = ref.astype(np.float64), out.astype(np.float64)
        diff = float(np.max(np.abs(r - o)))
        worst = max(worst, diff)
        if diff <= atol + rtol * float(np.max(np.abs(r))):
            continue
        if ref.ndim >= 2 and ref.shape[-1] > 1 and np.issubdtype(ref.dtype, np.floating):
            agree &= bool(np.array_equal(r.argmax(-1), o.argmax(-1)))
        else:
            agree = False
    return agree, worst


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney(x, y) -> tuple[float, float]:
    """Mann–Whitney U of ``x`` against ``y``: (U of x, two-sided p), normal approximation with ties."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return math.nan, 1.0
    both = np.concatenate([x, y])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0  # average rank (1-based) of each run of ties
    ranks[order] = np.repeat(avg, counts)
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - float((counts**3 - counts).sum()) / (n * (n - 1)))
    if var <= 0:
        return u1, 1.0
    z = (abs(u1 - n1 * n2 / 2.0) - 0.5) / math.sqrt(var)  # with continuity correction
    return u1, min(1.0, 2 * _norm_sf(max(z, 0.0)))


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of the pooled z-test that k1/n1 and k2/n2 are the same rate."""
    if n1 == 0 or n2 == 0:
        return 1.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return min(1.0, 2 * _norm_sf(abs(k1 / n1 - k2 / n2) / se))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    c = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    return max(0.0, mid - c), min(1.0, mid + c)


def report(data: dict, *, min_samples: int = 100, max_slowdown: float = 0.10, min_agreement: float = 0.95,
           alpha: float = 0.05) -> dict:
    """Compare the variants of an A/B test (``ABTest.to_dict()``) and recommend promote, keep or rollback.

    rollback: the candidate has significantly more errors, agrees with the baseline less than
        ``min_agreement``, or is significantly slower (median) by more than ``max_slowdown``.
    promote: enough samples (``min_samples`` per variant) and none of the above.
    keep: too few samples to tell; keep the test running.
    """
    b, c = data["variants"]["baseline"], data["variants"]["candidate"]
    lb, lc = np.asarray(b["latencies_ms"], float), np.asarray(c["latencies_ms"], float)

    def summary(v, lat):
        return {"version": v["version"], "requests": v["requests"], "errors": v["errors"],
                "error_rate": v["errors"] / v["requests"] if v["requests"] else 0.0,
                "p50_ms": float(np.median(lat)) if lat.size else None,
                "p99_ms": float(np.percentile(lat, 99)) if lat.size else None}

    sb, sc = summary(b, lb), summary(c, lc)
    _, p_lat = mann_whitney(lc, lb)
    p_err = two_proportions(c["errors"], c["requests"], b["errors"], b["requests"])
    agreement = c["agreed"] / c["compared"] if c["compared"] else None
    slowdown = (sc["p50_ms"] / sb["p50_ms"] - 1) if sb["p50_ms"] and sc["p50_ms"] else None
    reasons = []
    if sc["error_rate"] > sb["error_rate"] and p_err < alpha:
        reasons.append(f"candidate error rate {sc['error_rate']:.2%} vs {sb['error_rate']:.2%} (p={p_err:.3g})")
    if agreement is not None and c["compared"] >= min(min_samples, 20) and agreement < min_agreement:
        reasons.append(f"candidate agrees with the baseline on {agreement:.1%} of {c['compared']} requests "
                       f"(< {min_agreement:.0%})")
    if slowdown is not None and slowdown > max_slowdown and p_lat < alpha:
        reasons.append(f"candidate median latency {slowdown:+.1%} (p={p_lat:.3g}, Mann-Whitney U)")
    if reasons:
        rec = "rollback"
    elif min(b["requests"], c["requests"]) < min_samples:
        rec = "keep"
        reasons.append(f"too few requests to decide ({b['requests']} baseline, {c['requests']} candidate; "
                       f"need {min_samples} each)")
    else:
        rec = "promote"
        reasons.append("no significant difference in errors, agreement within bounds, latency "
                       + ("not significantly worse" if slowdown is None or slowdown <= max_slowdown or p_lat >= alpha
                          else "worse"))
    return {"model": data["model"], "weight": data["weight"], "baseline": sb, "candidate": sc,
            "latency_p": p_lat, "error_p": p_err, "slowdown": slowdown, "agreement": agreement,
            "agreement_ci95": wilson(c["agreed"], c["compared"]) if c["compared"] else None,
            "compared": c["compared"], "max_output_diff": c["max_diff"], "recommendation": rec, "reasons": reasons,
            "method": "latency: Mann-Whitney U, two-sided; errors: pooled two-proportion z-test; "
                      f"agreement: shadow runs on the baseline; alpha={alpha}"}
