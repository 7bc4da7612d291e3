"""``--target`` on ``optimize``/``deploy``/``bench``: the target profile, its precisions and engines
checked against what was asked, and the target's *estimated* figures to show beside those measured
here (an x86 figure is never presented as the ARM box's)."""

from __future__ import annotations

import logging

from edgedeploy.errors import UserError
from edgedeploy.hardware.targets import Target, host_isa, target

log = logging.getLogger(__name__)


def choose(name: str, *, precisions=(), engines=()) -> Target:
    """The target called ``name`` (did-you-mean when unknown), refusing a precision none of its
    runtimes runs (naming those that can) and an engine it does not run (naming its engines)."""
    t = target(name)
    for p in precisions:
        t.runtimes_for(str(p))
    have = list(dict.fromkeys(r.engine for r in t.runtimes))
    for e in engines:
        if e not in (None, "auto") and str(e) not in have:
            raise UserError(f"target {t.key} does not run engine {str(e)!r}; its engines are {', '.join(have)}")
    return t


def here_engines(t: Target, usable) -> list[str]:
    """The target's engines that edgedeploy also runs on this machine, among ``usable``, in the
    target's order (for an ARM box: ONNX Runtime, ncnn — the same artefact, x86 kernels)."""
    return [e for e in dict.fromkeys(r.engine for r in t.runtimes) if e in usable]


def not_the_targets(t: Target) -> str | None:
    """The one line saying that figures measured here are not the target's (None for this machine)."""
    if t.key == "local":
        return None
    isa = host_isa()
    return (f"latency and memory above are measured on this {isa} machine, not on {t.key} "
            f"({t.isa}{', other cores' if t.isa == isa else ''}); {t.key}'s figures below are estimated "
            "(roofline of its profile, edgedeploy estimate), not measured")


def estimated(t: Target, model, *, shape=None, precisions=("fp32",), unit: str | None = "cpu") -> list[dict]:
    """The target's estimated latency for ``model`` at each precision its runtimes run, labelled
    ``how: estimated``, on ``unit`` (default the CPU: the engines edgedeploy runs here are the
    target's CPU runtimes; None lets the estimator pick an accelerator). A precision the
    estimator cannot cost is left out with a log line."""
    from edgedeploy.hardware.estimate import estimate

    rows = []
    for p in dict.fromkeys(str(p) for p in precisions):
        if p not in t.precisions():
            continue
        try:
            e = estimate(model, t.device, shape=tuple(shape) if shape else None, precision=p, unit=unit, top=1)
        except UserError as exc:
            log.info("no estimate of %s on %s at %s: %s", model, t.key, p, exc)
            continue
        rows.append({"target": t.key, "model": e.model, "precision": e.precision, "unit": e.unit,
                     "latency_ms": round(e.latency_ms, 3), "latency_low_ms": round(e.latency_low_ms, 3),
                     "latency_high_ms": round(e.latency_high_ms, 3), "memory_bytes": e.memory_bytes,
                     "how": "estimated", "method": e.method, "notes": list(e.notes)})
    return rows
