"""The best untuned engine next to edgedeploy's choice for one model, measured side by side.

Candidates: every installed engine that runs the model, opened with its own defaults (the
anchors, ``open_default``), and the run-time choices edgedeploy makes without re-making the
model — FP32 at the given thread count on each engine, and BF16 on OpenVINO where the CPU has
native BF16 (:mod:`edgedeploy.hardware.isa`); for a model with a dynamic input dimension, each of
those once more compiled for the one shape measured (``EngineOptions.input_shape``) on the engines
that honour it. All are opened in one process and timed
interleaved (:func:`edgedeploy.optimize.latency.measure`: rounds of short blocks with a pause
between candidates so no one's spinning threads slow the next), so the ratio is fair on a busy
machine. edgedeploy's choice is the fastest tuned candidate *only when* its p50 interval lies
entirely below the best anchor's (:func:`~edgedeploy.engines.timing.clears_noise`); otherwise
the best anchor itself: never behind the best untuned engine. INT8 and pruned models come from
``edgedeploy optimize`` / ``deploy``, which run the same rule over more candidates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from edgedeploy import engines
from edgedeploy.engines import EngineOptions
from edgedeploy.engines.timing import clears_noise
from edgedeploy.errors import UserError
from edgedeploy.plan import DeploymentPlan, ModelFile

log = logging.getLogger(__name__)


@dataclass
class Versus:
    model: str
    shape: tuple[int, ...]
    anchor: str
    choice: str
    fastest: str  # the fastest tuned candidate (the choice only when it clears the noise band)
    threads: int
    latency: dict = field(default_factory=dict)  # label -> optimize.latency.Latency
    skipped: dict = field(default_factory=dict)  # label -> why it could not run

    @property
    def ratio(self) -> float:
        """Best anchor p50 / choice p50 (1.0 when the anchor is the choice)."""
        return self.latency[self.anchor].median_ms / self.latency[self.choice].median_ms

    def to_dict(self) -> dict:
        return {"model": self.model, "shape": list(self.shape), "best_untuned": self.anchor, "choice": self.choice,
                "fastest_tuned": self.fastest, "ratio": round(self.ratio, 3), "latency": {k: v.to_dict() for k, v in self.latency.items()},
                "skipped": self.skipped}


def candidates(model, shape: tuple[int, ...], *, threads: int, isa) -> dict[str, DeploymentPlan]:
    """Label → plan: each runnable engine's default, FP32 tuned, BF16 on OpenVINO where native; and, for a model
    with a dynamic input dimension, the tuned ones compiled for ``shape`` where the engine honours it."""
    from edgedeploy.ingest import load_model

    m = load_model(model)
    source = ModelFile.of(m.path, m.params)
    dynamic = engines.dynamic_input(m)
    plans = {}
    for e in engines.ENGINES:
        if engines.runnable(e, m.format) or not engines.available(e):
            continue
        plans[f"{e} default (anchor)"] = DeploymentPlan(engine=e, precision="fp32", model=source, untuned=True,
                                                        shape=shape)
        precisions = ["fp32"] + (["bf16"] if isa.native_bf16 and "precision" in engines.spec(e).options
                                 and "bf16" in engines.spec(e).precisions else [])
        for p in precisions:
            plan = DeploymentPlan(engine=e, precision=p, model=source, shape=shape,
                                  options=EngineOptions(threads=threads, precision=p))
            plans[plan.label] = plan
            if dynamic and "input_shape" in engines.spec(e).options:
                fixed = replace(plan, options=plan.options.replace(input_shape=tuple(shape)))
                plans[fixed.label] = fixed
    return plans


def compare(model, *, threads: int = 2, rounds: int = 3, block: int = 5, isa=None,
            shape: tuple[int, ...] | None = None) -> Versus:
    """Measure :func:`candidates` of ``model`` (zoo name or path) side by side; see the module docstring.
    ``shape``: the input shape (default: the zoo entry's example shape)."""
    from edgedeploy.hardware.isa import detect
    from edgedeploy.ingest import load_model
    from edgedeploy.optimize import latency

    m = load_model(model)
    shape = shape or (m.zoo.example_shape if m.zoo else None)
    if shape is None:
        raise UserError(f"{m.name}: no example input shape; compare runs zoo models (or give one with a zoo entry)")
    plans, skipped = {}, {}
    for label, plan in candidates(m, shape, threads=threads, isa=isa or detect()).items():
        try:  # opening once also loads the engine's libraries, so the memory figures below are the model's own
            plan.open().release()
            plans[label] = plan
        except (UserError, RuntimeError) as exc:  # e.g. a Paddle model ORT cannot take: said, not fatal
            skipped[label] = " ".join(str(exc).split())[:160]
    if not plans:
        raise UserError(f"{m.name}: no engine could open it ({'; '.join(skipped.values())})")
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    lat = latency.measure(plans, x, rounds=rounds, block=block)
    anchors = [k for k, p in plans.items() if p.untuned]
    best_anchor = min(anchors, key=lambda k: lat[k].median_ms)
    tuned = [k for k, p in plans.items() if not p.untuned]
    fastest = min(tuned, key=lambda k: lat[k].median_ms) if tuned else best_anchor
    choice = fastest if clears_noise(lat[fastest].interval, lat[best_anchor].interval) else best_anchor
    return Versus(model=m.name, shape=tuple(shape), anchor=best_anchor, choice=choice, fastest=fastest, threads=threads, latency=lat,
                  skipped=skipped)
