"""What a target's artefact is and how each of its figures was obtained, and the context its builders share.

Every figure carries how it was obtained: ``measured`` (on this machine), ``emulated`` (qemu-aarch64,
the same engine version's ARM kernels), ``simulated`` (the vendor's simulator), ``stand-in`` (another
engine runs the same file here) or ``estimated`` (roofline of the target's profile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy.hardware.targets import Target
from edgedeploy.ingest import Model

PRECISION_RANK = {"int8": 0, "fp16": 1, "bf16": 1, "fp32": 2}


@dataclass
class Figure:
    """A number and how it was obtained ("measured", "emulated", "simulated", "stand-in", "estimated")."""

    value: float | None
    how: str
    detail: str = ""


@dataclass
class Artifact:
    """One file set for one runtime of a target, with its checked figures."""

    target: str
    engine: str
    unit: str
    precision: str
    files: list[str]
    accuracy: Figure | None = None  # task metric of this artefact
    reference: Figure | None = None  # the FP32 model's task metric on the same samples, here
    agreement: Figure | None = None  # largest output difference from FP32 on seeded inputs
    latency_ms: Figure | None = None
    primary: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    target: Target
    model: Model
    fp32: object
    shape: tuple[int, ...]
    calib: object
    out: Path
    task: str | None
    samples: int | None
    say: Callable[[str], None]
    budget: float = 0.01
    _references: dict = field(default_factory=dict, repr=False)  # samples -> the FP32 model's result, once per build

    def over_budget(self, art: Artifact) -> bool:
        """Whether an INT8 artefact's metric fell more than the budget (and calibration data can fix it)."""
        drop = drop_of(art)
        return self.calib is not None and drop is not None and drop > self.budget

    def feeds(self, n: int = 2) -> list[dict]:
        return list(self.calib.feeds[:n]) if self.calib is not None else [self.fp32.example_feeds(self.shape)]

    def agreement(self, session, how: str) -> Figure:
        from edgedeploy.parity import compare

        worst, tol = 0.0, np.inf
        for f in self.feeds():
            d, t = compare(self.fp32.run(f), session.run(f))
            worst, tol = max(worst, d), min(tol, t)
        return Figure(worst, how, f"largest |output - FP32| over {len(self.feeds())} calibration inputs "
                                  f"(FP32 tolerance {tol:.2g})")

    def metric(self, session, how: str, n: int | None = None) -> tuple[Figure | None, Figure | None]:
        if not self.task or not self.model.zoo:
            return None, None
        from edgedeploy.evaluation.runner import evaluate

        n = self.samples or n
        got = evaluate(session, self.task, like=self.model.zoo.name, n=n)
        if n not in self._references:  # every artefact and every step of a float ladder is compared with the same
            self._references[n] = evaluate(self.fp32, self.task, like=self.model.zoo.name, n=n)
        ref = self._references[n]
        return (Figure(got.value, how, f"{got.metric} on {got.n} samples ({got.data})"),
                Figure(ref.value, "measured", f"FP32 {ref.metric} on ONNX Runtime here, same samples"))

    def estimate(self, unit: str, precision: str) -> Figure:
        from edgedeploy.hardware.estimate import estimate

        e = estimate(self.model, self.target.device, shape=self.shape, precision=precision, unit=unit)
        return Figure(e.latency_ms, "estimated", f"{e.latency_low_ms:.1f}-{e.latency_high_ms:.1f} ms band; {e.method}")


def drop_of(a: Artifact) -> float | None:
    if a.accuracy and a.reference and a.accuracy.value is not None and a.reference.value is not None:
        return a.reference.value - a.accuracy.value
    return None
