"""Latency and memory of a model on a device you may not have: an additive roofline, calibrated here.

Method. Each operator's work comes from :func:`edgedeploy.modelinfo.node_costs` (FLOPs and bytes
at a concrete input shape). Its time on a compute unit is

    t_node = flops / (peak x e)  +  bytes / (bandwidth x e_bw)  +  c_node

with ``e`` the fraction of peak the engine reaches, ``e_bw`` the fraction of bandwidth, and
``c_node`` a fixed per-operator cost (dispatch, threading). These three are **learned on this machine** (:func:`calibrate`): the
zoo models are measured with the benchmark harness and the linear model is fitted by
non-negative least squares; its error is stated by leave-one-model-out cross-validation, so
the band is the error on models the fit did not see. On another CPU the efficiencies carry over
(same engines, same kind of kernels) and ``c_node`` scales with the clock. Accelerators
(GPU/NPU/TPU) run other software, so a CPU-learned efficiency says nothing there: their
efficiency comes from the published latencies of SPEC.md (:mod:`edgedeploy.hardware.published`),
and their band is that check's leave-one-out error. Every estimate says which case it is.

Memory = weights (at the precision) x m_w + peak live activations x m_a + m_0, fitted on the
model-attributable peak RSS the harness measures.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy.hardware.profiles import ComputeUnit, HardwareProfile, get, local

log = logging.getLogger(__name__)

# Zoo models and input sizes for calibration: two sizes where the input is dynamic.
CALIBRATION_SET: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("ppocr-cls", (1, 3, 48, 192)), ("ppocr-cls", (1, 3, 48, 384)),
    ("pplcnet-orientation", (1, 3, 224, 224)),
    ("ppocrv6-rec", (1, 3, 48, 320)), ("ppocrv6-rec", (1, 3, 48, 640)),
    ("picodet-layout", (1, 3, 800, 608)),
    ("ppocrv6-det", (1, 3, 480, 480)), ("ppocrv6-det", (1, 3, 640, 640)),
)
BYTES_PER = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}
# Used only before any calibration exists; labelled "uncalibrated" wherever shown.
PRIOR = {"e": 0.1, "e_bw": 0.3, "c_node_ms": 0.005, "band": 3.0}


@dataclass
class Point:
    """One calibration measurement: the model's features and what the harness measured."""

    model: str
    shape: list[int]
    flops: float
    bytes: float
    nodes: int
    weight_bytes: float
    peak_activation_bytes: float
    measured_ms: float
    measured_memory_bytes: float | None

    def x(self) -> list[float]:
        return [self.flops, self.bytes, self.nodes]


@dataclass
class Calibration:
    """What :func:`calibrate` learned on this machine for one engine, with its cross-validated error."""

    engine: str
    machine: str
    threads: int
    peak_fp32: float
    bandwidth: float
    ghz: float | None
    e: float
    e_bw: float | None  # None: the fit found no bandwidth term (bytes add nothing beyond FLOPs here)
    c_node_ms: float
    memory: list[float]  # m_w, m_a, m_0 (bytes)
    band: float  # x/÷ factor covering 90% of leave-one-model-out errors
    memory_band: float = 1.5  # x/÷ factor covering 90% of the memory fit's residuals
    cv_errors: list[dict] = field(default_factory=list)
    points: list[dict] = field(default_factory=list)
    created: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def features(costs) -> dict[str, float]:
    return {"flops": costs.flops, "bytes": sum(n.bytes for n in costs.nodes), "nodes": len(costs.nodes)}


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares (scipy's Lawson-Hanson active-set solver)."""
    from scipy.optimize import nnls as _nnls

    return _nnls(a, b)[0]


def _fit_time(points: list[Point]) -> np.ndarray:
    # Relative errors matter (a 2 ms model and a 300 ms one alike): weight each row by 1/measured.
    a = np.array([p.x() for p in points], float)
    b = np.array([p.measured_ms for p in points], float)
    scale = a.max(axis=0)
    scale[scale == 0] = 1
    w = 1 / b
    coef = nnls(a / scale * w[:, None], b * w)
    return coef / scale  # ms per FLOP / byte / node


def _fit_memory(points: list[Point]) -> list[float]:
    rows = [p for p in points if p.measured_memory_bytes]
    if len(rows) < 3:
        return [1.0, 1.0, 0.0]
    a = np.array([[p.weight_bytes, p.peak_activation_bytes, 1.0] for p in rows])
    b = np.array([p.measured_memory_bytes for p in rows])
    return nnls(a, b).tolist()


def _memory_band(mem: list[float], points: list[Point]) -> float:
    logs = sorted(abs(math.log(max(mem[0] * p.weight_bytes + mem[1] * p.peak_activation_bytes + mem[2], 1.0)
                               / p.measured_memory_bytes)) for p in points if p.measured_memory_bytes)
    return math.exp(logs[min(len(logs) - 1, int(math.ceil(0.9 * len(logs))) - 1)]) if logs else 1.5


def _predict(coef: np.ndarray, p: Point) -> float:
    return float(np.dot(coef, p.x()))


def fit(points: list[Point], *, engine: str, threads: int, machine: HardwareProfile) -> Calibration:
    """Fit the three time coefficients and the memory model; state the leave-one-model-out error."""
    coef = _fit_time(points)
    mem = _fit_memory(points)
    cv = []
    for model in sorted({p.model for p in points}):
        train = [p for p in points if p.model != model]
        if len(train) < 3:
            continue
        c = _fit_time(train)
        for p in (p for p in points if p.model == model):
            pred = _predict(c, p)
            cv.append({"model": p.model, "shape": p.shape, "measured_ms": p.measured_ms, "predicted_ms": pred,
                       "error": pred / p.measured_ms - 1})
    logs = sorted(abs(math.log(max(r["predicted_ms"], 1e-6) / r["measured_ms"])) for r in cv) or [math.log(PRIOR["band"])]
    band = math.exp(logs[min(len(logs) - 1, int(math.ceil(0.9 * len(logs))) - 1)])
    cpu = machine.cpu_unit
    peak = cpu.peak["fp32"].value * threads / max(_cores(machine), 1)
    eff = lambda k: 1e3 / (k * peak) if k > 0 else 1.0  # noqa: E731  (ms/FLOP → fraction of peak)
    return Calibration(
        engine=engine, machine=machine.name, threads=threads, peak_fp32=peak, bandwidth=machine.bandwidth.value,
        ghz=_ghz(machine), e=min(eff(coef[0]), 1.0),
        e_bw=min(1e3 / (coef[1] * machine.bandwidth.value), 1.0) if coef[1] > 0 else None,
        c_node_ms=float(coef[2]), memory=mem, memory_band=_memory_band(mem, points), band=max(band, 1.05), cv_errors=cv,
        points=[asdict(p) for p in points], created=time.strftime("%Y-%m-%d %H:%M:%S"))


def _cores(profile: HardwareProfile) -> int:
    import re

    m = re.match(r"(\d+)", profile.cpu)
    return int(m.group(1)) if m else 1


def _ghz(profile: HardwareProfile) -> float | None:
    import re

    m = re.search(r"x (\d+(?:\.\d+)?) GHz", profile.cpu_unit.peak["fp32"].basis) if profile.cpu_unit and \
        "fp32" in profile.cpu_unit.peak else None
    return float(m.group(1)) if m else None


def calibration_path(engine: str) -> Path:
    import hashlib

    from edgedeploy.zoo import cache_dir

    key = hashlib.sha256(local().name.encode()).hexdigest()[:12]
    return cache_dir() / "calibration" / f"{engine}-{key}.json"


def load_calibration(engine: str = "onnxruntime") -> Calibration | None:
    """The saved calibration of ``engine`` on this machine, or None."""
    path = calibration_path(engine)
    if not path.exists():
        return None
    try:
        return Calibration(**json.loads(path.read_text()))
    except (TypeError, ValueError):
        log.warning("ignoring unreadable calibration %s", path)
        return None


def measure_points(items=CALIBRATION_SET, *, engine: str = "onnxruntime", threads: int | None = None,
                   runs: int = 20, time_budget_s: float = 3.0,
                   progress: Callable[[int, int, str], None] | None = None) -> list[Point]:
    """Measure each (model, shape) with the benchmark harness (fresh process, median latency)."""
    from edgedeploy.benchmarking import BenchConfig, run_one
    from edgedeploy.modelinfo import node_costs

    threads = threads or _cores(local())
    points = []
    for i, (model, shape) in enumerate(items):
        if progress:
            progress(i, len(items), f"{model} {'x'.join(map(str, shape))}")
        r = run_one(BenchConfig(model=model, engine=engine, shape=tuple(shape), threads=threads, runs=runs,
                                time_budget_s=time_budget_s, warmup=3))
        if not r.ok:
            log.warning("calibration: %s %s failed: %s", model, shape, r.reason)
            continue
        costs = node_costs(model, shape=tuple(shape))
        f = features(costs)
        points.append(Point(model=model, shape=list(shape), **f, weight_bytes=costs.weight_bytes,
                            peak_activation_bytes=costs.peak_activation_bytes, measured_ms=r.p50,
                            measured_memory_bytes=(r.model_memory_mb or 0) * 2**20 or None))
    if progress:
        progress(len(items), len(items), "done")
    return points


def calibrate(items=CALIBRATION_SET, *, engine: str = "onnxruntime", threads: int | None = 1,
              save: bool = True, progress=None, **kw) -> Calibration:
    """Measure the calibration set here, fit, and save the result for later estimates.

    One thread by default: on a shared machine a single thread is the least disturbed by other
    processes; the fitted efficiency is a fraction of the peak of the threads used, so estimates
    at other thread counts (and on other CPUs) scale from it.
    """
    from edgedeploy.errors import UserError
    from edgedeploy.util import atomic_write

    machine = local()
    threads = threads or _cores(machine)
    points = measure_points(items, engine=engine, threads=threads, progress=progress, **kw)
    if len(points) < 3:
        raise UserError(f"calibration needs at least 3 measured models; only {len(points)} ran on {engine}")
    cal = fit(points, engine=engine, threads=threads, machine=machine)
    if save:
        with atomic_write(calibration_path(engine), "w") as f:
            f.write(json.dumps(cal.to_dict(), indent=2))
    return cal


@dataclass
class OpEstimate:
    name: str
    op_type: str
    kind: str
    flops: int
    bytes: int
    ms: float
    bound: str  # "compute" | "memory" | "overhead"


@dataclass
class Estimate:
    """An estimate — never a measurement — of one model on one device's compute unit."""

    model: str
    shape: list[int]
    device: str
    unit: str
    precision: str
    latency_ms: float
    latency_low_ms: float
    latency_high_ms: float
    memory_bytes: float
    memory_low_bytes: float
    memory_high_bytes: float
    flops: int
    weight_bytes: int
    unknown_nodes: int
    calibrated: bool
    method: str
    basis: list[str]
    ops: list[OpEstimate]
    notes: list[str] = field(default_factory=list)
    peak_gops: float | None = None  # the unit's peak at ``precision`` (GFLOP/s; GOP/s for int8), published
    achieved_gops: float | None = None  # flops / latency_ms: what the estimate assumes the model reaches

    @property
    def utilisation(self) -> float | None:
        """Estimated achieved / peak compute (0..1): the utilisation the estimate assumes, made explicit."""
        return self.achieved_gops / self.peak_gops if self.achieved_gops and self.peak_gops else None

    def achieved_vs_peak(self) -> str:
        """One line, labelled estimated: achieved GFLOP/s against the unit's peak."""
        unit = "GOP/s" if self.precision == "int8" else "GFLOP/s"
        return (f"achieved vs peak (estimated, not measured): {self.achieved_gops:.1f} of {self.peak_gops:.0f} {unit} "
                f"{self.precision} = {self.utilisation:.1%} of the {self.unit}'s peak")

    def to_dict(self) -> dict:
        return {**asdict(self), "utilisation": self.utilisation}


def _unit_for(profile: HardwareProfile, precision: str, unit: str | None) -> ComputeUnit:
    from edgedeploy.errors import UserError

    units = profile.units
    if unit:
        found = [u for u in units if u.kind == unit or u.name == unit]
        if not found:
            raise UserError(f"{profile.key} has no {unit!r} unit; it has {', '.join(u.kind for u in units)}")
        return found[0]
    # An accelerator that runs this precision (or a close one) when there is one; else the CPU.
    for u in profile.accelerators:
        if u.best_precision(precision) and u.peak:
            return u
    if profile.cpu_unit and profile.cpu_unit.peak:
        return profile.cpu_unit
    raise UserError(f"{profile.key}: no compute figure is published for any unit; cannot estimate")


def estimate(model, device: str | HardwareProfile = "local", *, shape: tuple[int, ...] | None = None,
             precision: str = "fp32", threads: int | None = None, unit: str | None = None,
             calibration: Calibration | None = None, engine: str = "onnxruntime", top: int = 10) -> Estimate:
    """Estimated latency (ms, with a band) and memory (bytes) of ``model`` on ``device``.

    ``unit`` picks "cpu" or an accelerator kind; by default an accelerator that runs
    ``precision`` (else the CPU). ``threads`` scales the local CPU's peak (default: all cores).
    """
    from edgedeploy.hardware import published
    from edgedeploy.modelinfo import node_costs

    profile = device if isinstance(device, HardwareProfile) else get(device)
    costs = node_costs(model, shape=shape)
    cal = calibration or load_calibration(engine)
    u = _unit_for(profile, precision, unit)
    run_precision = u.best_precision(precision) or "fp32"
    notes = [] if run_precision == precision else [f"{u.name} has no {precision} figure; estimated at {run_precision}"]
    peak = u.peak[run_precision].value
    basis = [f"peak {peak / 1e9:.0f} G{'FLOP' if run_precision != 'int8' else 'OP'}/s {run_precision} "
             f"({u.peak[run_precision].basis})"]
    bw = profile.bandwidth.value
    basis.append(f"bandwidth {bw / 1e9:.1f} GB/s ({profile.bandwidth.basis})" if bw else
                 f"bandwidth unknown ({profile.bandwidth.basis}): memory time not counted")
    scale_w = BYTES_PER.get(run_precision, 4) / 4
    if u.kind == "cpu":
        cores = _cores(profile)
        if profile.local and threads:
            peak *= min(threads, cores) / cores
        if cal:
            e = cal.e
            e_bw, c_node = cal.e_bw, cal.c_node_ms
            ghz = _ghz(profile)
            if not profile.local and ghz and cal.ghz:
                c_node *= cal.ghz / ghz
            band = cal.band if profile.local else cal.band * published.cpu_transfer_band(cal)
            method = (f"additive roofline, efficiencies learned on this machine ({cal.engine}, {cal.threads} threads, "
                      f"{len(cal.points)} measurements; leave-one-model-out band x/÷{cal.band:.2f}"
                      + ("" if profile.local else f", widened x{published.cpu_transfer_band(cal):.2f} for another CPU "
                         "(published-figure check)") + ")")
        else:
            e = PRIOR["e"]
            e_bw, c_node, band = PRIOR["e_bw"], PRIOR["c_node_ms"], PRIOR["band"]
            method = "additive roofline, UNCALIBRATED prior efficiencies (run `edgedeploy estimate --calibrate`)"
        bw_text = f"{e_bw:.1%} of bandwidth" if e_bw else "no bandwidth term (the fit found bytes add nothing beyond FLOPs)"
        basis.append(f"efficiency {e:.1%} of peak, {bw_text}, {c_node * 1000:.1f} µs per operator")
    else:
        acc = published.accelerator_efficiency()
        e = acc.efficiency
        e_bw, c_node, band = 1.0, 0.0, acc.band
        method = (f"roofline with accelerator efficiency {acc.efficiency:.1%} of peak fitted on {acc.n} published "
                  f"latencies (leave-one-out band x/÷{acc.band:.2f}); nothing was measured on this unit")
        basis.append(f"accelerator efficiency {acc.efficiency:.1%} (from SPEC.md published latencies)")
    ops = []
    for n in costs.nodes:
        compute = n.flops / (peak * e) * 1e3
        nbytes = n.weight_bytes * scale_w + n.activation_bytes * (scale_w if u.kind != "cpu" else 1)
        memory = nbytes / (bw * e_bw) * 1e3 if bw and e_bw else 0.0
        ms = compute + memory + c_node
        bound = max((("compute", compute), ("memory", memory), ("overhead", c_node)), key=lambda t: t[1])[0]
        ops.append(OpEstimate(n.name, n.op_type, n.kind, n.flops, int(nbytes), ms, bound))
    total = sum(o.ms for o in ops)
    if u.kind != "cpu":
        # accelerators: whole-model roofline (their efficiency was fitted that way)
        t_compute = costs.flops / (peak * e) * 1e3
        t_weights = costs.weight_bytes * scale_w / bw * 1e3 if bw else 0.0
        total = max(t_compute, t_weights)
        k = total / max(sum(o.ms for o in ops), 1e-12)
        for o in ops:
            o.ms *= k
    m_w, m_a, m_0 = cal.memory if cal else (1.0, 2.0, 20e6)
    mem = costs.weight_bytes * scale_w * m_w + costs.peak_activation_bytes * m_a + (m_0 if u.kind == "cpu" else 0)
    mem_band = cal.memory_band if cal else 2.0
    if costs.unknown:
        notes.append(f"{costs.unknown} operators had unknown shapes and are not counted: the estimate is low")
    ops.sort(key=lambda o: -o.ms)
    achieved = costs.flops / (total * 1e-3) / 1e9 if total > 0 else None
    est = Estimate(
        model=costs.model, shape=costs.shape, device=profile.key, unit=u.name, precision=run_precision,
        latency_ms=total, latency_low_ms=total / band, latency_high_ms=total * band,
        memory_bytes=mem, memory_low_bytes=mem / mem_band, memory_high_bytes=mem * mem_band,
        flops=costs.flops, weight_bytes=costs.weight_bytes, unknown_nodes=costs.unknown,
        calibrated=cal is not None or u.kind != "cpu", method=method, basis=basis, ops=ops[:top],
        notes=notes + list(profile.notes), peak_gops=peak / 1e9, achieved_gops=achieved)
    if achieved:
        est.notes.append(est.achieved_vs_peak())
    return est
