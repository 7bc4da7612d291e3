"""Latency of several candidate models, measured interleaved in one process.

Method: every candidate is opened (edgedeploy's engine path with ``threads``; the ONNX Runtime
anchor exactly as ``onnxruntime.InferenceSession(path)``), then ``rounds`` rounds run each
candidate in turn: 2 untimed runs, then ``block`` timed runs. Interleaving spreads load from
other processes evenly over the candidates, so their ratios stay fair on a busy machine; the
figure is the median of all timed runs (and the minimum, the least disturbed run, is kept too).
The benchmark harness (``edgedeploy.benchmarking``) measures one configuration per fresh
process, one after another — better for memory and cold start, worse for A/B under shared load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

METHOD = "in-process, interleaved: {rounds} rounds x {block} timed runs per candidate after 2 warm-up runs each; " \
         "median of all timed runs (the minimum is kept in the JSON); {threads} threads"


@dataclass(frozen=True)
class Candidate:
    """A model file on an engine; ``anchor``: opened with the engine's untouched defaults."""

    label: str
    path: str
    engine: str
    anchor: bool = False


@dataclass
class Latency:
    median_ms: float
    min_ms: float
    runs: int

    def to_dict(self) -> dict:
        return {"median_ms": round(self.median_ms, 3), "min_ms": round(self.min_ms, 3), "runs": self.runs}


def _open(c: Candidate, threads: int):
    from edgedeploy import engines
    from edgedeploy.engines import EngineOptions
    from edgedeploy.ingest import load_model

    if c.anchor:
        from edgedeploy.benchmarking.anchors import open_default

        s = open_default(c.engine, load_model(c.path))
        return s.run, s.inputs
    s = engines.load(c.path, engine=c.engine, options=EngineOptions(threads=threads))
    return s.run, s.inputs


def measure(candidates: list[Candidate], x: np.ndarray, *, threads: int = 2, rounds: int = 5, block: int = 5,
            progress: Callable[[str], None] | None = None) -> dict[str, Latency]:
    """Label → :class:`Latency` for each candidate on input ``x`` (fed to each model's first input)."""
    runs = {}
    for c in candidates:
        fn, inputs = _open(c, threads)
        runs[c.label] = (fn, {inputs[0].name: x})
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(rounds):
        if progress:
            progress(f"latency round {r + 1}/{rounds}")
        for label, (fn, feeds) in runs.items():
            fn(feeds), fn(feeds)
            for _ in range(block):
                t = time.perf_counter()
                fn(feeds)
                times[label].append((time.perf_counter() - t) * 1e3)
    return {k: Latency(statistics.median(v), min(v), len(v)) for k, v in times.items()}


def method(*, threads: int = 2, rounds: int = 5, block: int = 5) -> str:
    return METHOD.format(rounds=rounds, block=block, threads=threads)
