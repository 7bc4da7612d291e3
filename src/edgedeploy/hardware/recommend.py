"""Rank devices for a model by the seed's three criteria: compute match, toolchain, ecosystem.

1. Compute match: the estimated latency (:mod:`edgedeploy.hardware.estimate`, with its band)
   against the latency target, and the device's power range against the power budget. A device
   that draws more than the budget at its lowest setting, or cannot hold the weights, fails.
2. Toolchain / developer friendliness and 3. ecosystem: the facts recorded with each profile
   (:class:`~edgedeploy.hardware.profiles.Assessment`), which are edgedeploy's reading, not measurements.

Score = 0.5 x compute + 0.3 x toolchain + 0.2 x ecosystem; devices that fail a hard limit rank
below every device that does not, whatever their score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgedeploy.hardware.estimate import Estimate, estimate
from edgedeploy.hardware.profiles import DEVICES, HardwareProfile
from edgedeploy.units import fmt_bytes, fmt_ms

WEIGHTS = {"compute": 0.5, "toolchain": 0.3, "ecosystem": 0.2}


@dataclass
class Recommendation:
    rank: int
    device: str
    name: str
    score: float
    feasible: bool
    compute: float
    toolchain: float
    ecosystem: float
    estimate_ms: float | None
    estimate_band_ms: tuple[float, float] | None
    unit: str
    why: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _compute_match(est: Estimate | None, target_ms: float | None) -> tuple[float, str]:
    if est is None:
        return 0.0, "no estimate possible (no compute figure published)"
    band = f"estimated {fmt_ms(est.latency_ms)} ({fmt_ms(est.latency_low_ms)}-{fmt_ms(est.latency_high_ms)}) on {est.unit}"
    if target_ms is None:
        return min(1.0, 10 / max(est.latency_ms, 1e-3)), band
    if est.latency_high_ms <= target_ms:
        if est.latency_high_ms < target_ms / 20:
            return 0.85, f"{band}: meets {fmt_ms(target_ms)} with over 20x headroom (over-provisioned)"
        return 1.0, f"{band}: meets {fmt_ms(target_ms)} even at the top of the band"
    if est.latency_ms <= target_ms:
        return 0.7, f"{band}: meets {fmt_ms(target_ms)} at the central estimate only"
    return max(0.0, 0.5 * target_ms / est.latency_ms), f"{band}: misses {fmt_ms(target_ms)}"


def recommend(model, *, latency_ms: float | None = None, power_w: float | None = None,
              memory_bytes: int | None = None, precision: str = "int8", shape=None,
              devices: list[HardwareProfile] | None = None) -> list[Recommendation]:
    """Every device ranked for ``model`` under the targets; each row says why."""
    rows = []
    for d in devices or list(DEVICES):
        why: list[str] = []
        feasible = True
        try:
            est = estimate(model, d, shape=shape, precision=precision, top=0)
        except Exception as exc:  # a device without figures still gets a row saying so
            from edgedeploy.errors import UserError

            if not isinstance(exc, UserError):
                raise
            est = None
            why.append(str(exc))
        compute, text = _compute_match(est, latency_ms)
        why.insert(0, text)
        if latency_ms is not None and est is not None and est.latency_ms > latency_ms:
            feasible = False
        if power_w is not None and d.power_w:
            if d.power_w[0] > power_w:
                feasible = False
                why.append(f"draws at least {d.power_w[0]:g} W ({d.power_basis}) > budget {power_w:g} W")
            else:
                why.append(f"power {d.power_w[0]:g}-{d.power_w[1]:g} W fits {power_w:g} W"
                           + (" at its low setting" if d.power_w[1] > power_w else ""))
        if d.key in ("coral", "hailo-8"):
            why.append("needs a host computer: its power is not included")
        if est is not None and d.memory_bytes.value and est.weight_bytes * (1 if est.precision == "int8" else 2) > d.memory_bytes.value:
            why.append(f"weights {fmt_bytes(est.weight_bytes)} exceed {fmt_bytes(d.memory_bytes.value)} "
                       f"({d.memory_bytes.basis})")
            if d.key != "coral":
                feasible = False
        if memory_bytes is not None and not d.memory_bytes.value:  # unknown memory cannot be said to fit
            feasible = False
            why.append(f"memory unknown: cannot confirm the {fmt_bytes(memory_bytes)} asked")
        elif memory_bytes is not None and d.memory_bytes.value < memory_bytes:
            feasible = False
            why.append(f"has {fmt_bytes(d.memory_bytes.value)} < the {fmt_bytes(memory_bytes)} asked")
        why.append("toolchain: " + "; ".join(d.toolchain.facts))
        why.append("ecosystem: " + "; ".join(d.ecosystem.facts))
        score = (WEIGHTS["compute"] * compute + WEIGHTS["toolchain"] * d.toolchain.score
                 + WEIGHTS["ecosystem"] * d.ecosystem.score)
        rows.append(Recommendation(
            rank=0, device=d.key, name=d.name, score=round(score, 3), feasible=feasible, compute=round(compute, 2),
            toolchain=d.toolchain.score, ecosystem=d.ecosystem.score,
            estimate_ms=est.latency_ms if est else None,
            estimate_band_ms=(est.latency_low_ms, est.latency_high_ms) if est else None,
            unit=est.unit if est else "-", why=why))
    rows.sort(key=lambda r: (not r.feasible, -r.score))
    for i, r in enumerate(rows, 1):
        r.rank = i
    return rows
