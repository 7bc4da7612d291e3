"""A/B tests: split one model's traffic between a baseline and a candidate version, keep each
variant's latency, errors and agreement with the baseline, and judge them with a statistical test.

Routing is by weight (the candidate's share), sticky when the request carries a key: the same
key always lands on the same variant (sha256 of the key, not Python's per-process ``hash``).
Agreement: a request served by the candidate is also run on the baseline after its response has
gone (a shadow run, off the request's path) and the two outputs are compared.

Tests used by :func:`report` (all from ``scipy.stats``): Mann–Whitney U (two-sided) on
latencies; the pooled two-proportion z-test (as the equivalent 2x2 chi-square) on error rates;
a Wilson interval on the agreement rate.
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


def mann_whitney(x, y) -> tuple[float, float]:
    """Mann–Whitney U of ``x`` against ``y``: (U of x, two-sided p; scipy's method choice, ties corrected)."""
    from scipy.stats import mannwhitneyu

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0 or y.size == 0 or np.ptp(np.concatenate([x, y])) == 0:
        return math.nan, 1.0
    r = mannwhitneyu(x, y, alternative="two-sided")
    return float(r.statistic), float(r.pvalue)


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p that k1/n1 and k2/n2 are the same rate: the pooled two-proportion z-test, computed
    as its exact equivalent, the chi-square test of the 2x2 table without continuity correction."""
    from scipy.stats import chi2_contingency

    if n1 == 0 or n2 == 0 or k1 + k2 == 0 or k1 + k2 == n1 + n2:
        return 1.0
    return float(chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False).pvalue)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the rate k/n (scipy's ``binomtest(...).proportion_ci``)."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 1.0
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


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
