"""Find the best configuration that meets the deployment's targets, by measuring, with pruning.

Search space: engine x precision x threads x batch, within what the config allows
(:class:`~edgedeploy.deploy.config.Deployment`). Three stages:

1. **Static pruning**, nothing run: engines that cannot read the model or are not installed,
   precisions an engine has no way to run (no switch, and no optimiser to make such a model).
2. **Screen**: each (engine, precision) once at the most threads and batch 1 — its best case
   for latency — with accuracy measured where the model has ground truth. A variant is not
   expanded when it already misses the latency target there by more than 2x (fewer threads
   and larger batches are slower per call, short of contention on a shared machine), when it loses more accuracy than allowed, or when another variant is at
   least as good on latency, memory and power alike (dominated).
3. **Expand** the survivors over thread counts and batch sizes with full runs; batches grow
   until one misses the latency target.

Choice: among configurations that meet every target, the highest throughput (items/s; with a
fixed batch that is the lowest latency); within 3% of each other, lower latency, then lower
memory. When none meets them all, the closest (smallest worst-case miss) is returned, marked so.

Measuring and model-producing functions are injected (``measure``, ``produce``), so the
search is tested without engines; by default they are the benchmark harness
(:func:`edgedeploy.benchmarking.run_bench`) and the optimiser (``edgedeploy.optimize``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from edgedeploy import engines
from edgedeploy.deploy.config import PRECISION_ORDER, DeploymentConfig
from edgedeploy.units import fmt_bytes, fmt_ms, fmt_watts

log = logging.getLogger(__name__)

TIE = 0.03  # throughputs within 3% are a tie: below what these machines can tell apart
PRUNE_MISS = 2.0  # a variant missing the latency target by more than this at its best case is not expanded
# (not 1.0: on a shared machine fewer threads can beat more, so a near miss is still worth a look)
RUNTIME_PRECISIONS = ("fp32", "bf16", "fp16")  # what EngineOptions.precision can ask of an engine


@dataclass(frozen=True)
class Variant:
    """A model to run for one (engine, precision): its file and the engine's run-time precision."""

    model: str
    runtime_precision: str = "fp32"
    accuracy: float | None = None  # from the producer (e.g. the optimiser's own evaluation)
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    engine: str
    precision: str
    threads: int
    batch: int
    variant: Variant
    shape: tuple[int, ...]
    graph_optimization: bool = True
    memory_optimization: bool = False

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision} t{self.threads} b{self.batch}"


@dataclass
class Measurement:
    """What was measured for one candidate (ms, bytes, W); ``stage`` is "screen" or "expand"."""

    candidate: Candidate
    ok: bool
    stage: str = "expand"
    reason: str = ""
    latency_ms: dict = field(default_factory=dict)
    memory_bytes: float | None = None
    power_w: float | None = None
    power_source: str = ""
    power_measured: bool = False
    throughput: float | None = None
    accuracy: float | None = None
    accuracy_metric: str | None = None
    engine_version: str = ""
    method: str = ""
    notes: list[str] = field(default_factory=list)

    def latency(self, stat: str = "p50") -> float | None:
        return self.latency_ms.get(stat)

    def to_dict(self) -> dict:
        d = asdict(self)
        c = d.pop("candidate")
        d["config"] = {k: v for k, v in c.items() if k != "variant"} | {
            "model": c["variant"]["model"], "runtime_precision": c["variant"]["runtime_precision"]}
        return d


@dataclass
class Pruned:
    what: str
    reason: str


@dataclass
class TargetCheck:
    name: str
    target: str
    measured: str
    met: bool
    how: str  # "measured", "estimated (no sensor)", ...


@dataclass
class TuneResult:
    model: str
    shape: list[int]
    chosen: Measurement | None
    met: bool
    checks: list[TargetCheck]
    measurements: list[Measurement]
    pruned: list[Pruned]
    reference_accuracy: float | None
    notes: list[str]

    def to_dict(self) -> dict:
        return {"model": self.model, "shape": self.shape, "met": self.met,
                "chosen": self.chosen.to_dict() if self.chosen else None,
                "checks": [asdict(c) for c in self.checks], "reference_accuracy": self.reference_accuracy,
                "measurements": [m.to_dict() for m in self.measurements],
                "pruned": [asdict(p) for p in self.pruned], "notes": self.notes}


Measure = Callable[[list[Candidate], str], list[Measurement]]
Produce = Callable[[object, str, str], "Variant | str"]


def check_targets(m: Measurement, cfg: DeploymentConfig, reference_accuracy: float | None) -> list[TargetCheck]:
    """Each target of ``cfg.performance`` (and the accuracy limit) against measurement ``m``."""
    perf, stat = cfg.performance, cfg.performance.latency_statistic
    checks = []
    if perf.target_latency is not None:
        lat = m.latency(stat)
        checks.append(TargetCheck("latency", f"≤ {fmt_ms(perf.target_latency)} ({stat})", fmt_ms(lat),
                                  lat is not None and lat <= perf.target_latency, m.method or "measured"))
    if perf.max_memory is not None:
        checks.append(TargetCheck("memory", f"≤ {fmt_bytes(perf.max_memory)}", fmt_bytes(m.memory_bytes),
                                  m.memory_bytes is not None and m.memory_bytes <= perf.max_memory,
                                  "measured: model-attributable peak RSS"))
    if perf.power_consumption is not None:
        checks.append(TargetCheck("power", f"≤ {fmt_watts(perf.power_consumption)}", fmt_watts(m.power_w),
                                  m.power_w is not None and m.power_w <= perf.power_consumption,
                                  m.power_source or ("measured" if m.power_measured else "estimated")))
    if reference_accuracy is not None and cfg.evaluation.enable and m.accuracy is not None:
        drop = reference_accuracy - m.accuracy
        checks.append(TargetCheck("accuracy", f"drop ≤ {cfg.evaluation.max_accuracy_drop:.1%}",
                                  f"{m.accuracy:.1%} ({-drop:+.1%})", drop <= cfg.evaluation.max_accuracy_drop + 1e-9,
                                  f"measured: {m.accuracy_metric}"))
    return checks


def _miss(m: Measurement, cfg: DeploymentConfig) -> float:
    """Worst ratio measured/target over the targets (≤ 1 when all are met)."""
    p = cfg.performance
    ratios = [1e9] if not m.ok else []
    if m.ok:
        if p.target_latency:
            ratios.append(m.latency(p.latency_statistic) / p.target_latency)
        if p.max_memory and m.memory_bytes is not None:
            ratios.append(m.memory_bytes / p.max_memory)
        if p.power_consumption and m.power_w is not None:
            ratios.append(m.power_w / p.power_consumption)
    return max(ratios, default=0.0)


def choose(measured: list[Measurement], cfg: DeploymentConfig, reference_accuracy: float | None
           ) -> tuple[Measurement | None, bool]:
    """(best measurement, whether it meets every target). Throughput first, then latency, then memory."""
    ok = [m for m in measured if m.ok]
    if not ok:
        return None, False
    feasible = [m for m in ok if all(c.met for c in check_targets(m, cfg, reference_accuracy))]
    if feasible:
        top = max(m.throughput or 0 for m in feasible)
        tied = [m for m in feasible if (m.throughput or 0) >= top * (1 - TIE)]
        stat = cfg.performance.latency_statistic
        return min(tied, key=lambda m: (m.latency(stat), m.memory_bytes or 0)), True
    return min(ok, key=lambda m: (_miss(m, cfg), m.latency(cfg.performance.latency_statistic))), False


def _dominated(a: Measurement, others: list[Measurement]) -> Measurement | None:
    for b in others:
        if b is a or not b.ok:
            continue
        if (b.latency() <= a.latency() and (b.memory_bytes or 0) <= (a.memory_bytes or 0)
                and (b.power_w or 0) <= (a.power_w or 0) and (b.accuracy or 0) >= (a.accuracy or 0)
                and (b.latency() < a.latency() * (1 - TIE) or (b.memory_bytes or 0) < (a.memory_bytes or 0) * 0.9)):
            return b
    return None


def tune(cfg: DeploymentConfig, *, measure: Measure | None = None, produce: Produce | None = None,
         cores: int | None = None, progress: Callable[[str, int, int], None] | None = None) -> TuneResult:
    """Search, prune and choose; see the module docstring. ``progress(stage, done, total)``."""
    import os

    from edgedeploy.benchmarking import resolve_shape
    from edgedeploy.ingest import load_model

    measure = measure or bench_measure(cfg)
    produce = produce or default_produce(cfg)
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    dep, perf = cfg.deployment, cfg.performance
    model = load_model(cfg.model, cfg.params)
    shape1 = resolve_shape(model, dep.input_shape, 1)
    notes, pruned = [], []
    threads = dep.threads(cores)
    if dep.thread_num != "auto" and max(dep.thread_num) > cores:
        notes.append(f"thread_num {max(dep.thread_num)} > the {cores} cores usable here: tried up to {cores}")
    batches = dep.batches()

    # 1. static pruning
    variants: list[tuple[str, str, Variant]] = []
    for e in dep.engines or list(engines.ENGINES):
        why = engines.runnable(e, model.format) or (None if engines.available(e) else
                                                    f"not installed: {engines.spec(e).install}")
        if why:
            pruned.append(Pruned(e, why))
            continue
        for p in dep.precisions():
            if p not in engines.spec(e).precisions:
                pruned.append(Pruned(f"{e} {p}", f"{e} supports {', '.join(engines.spec(e).precisions)}"))
                continue
            v = produce(model, e, p)
            if isinstance(v, str):
                pruned.append(Pruned(f"{e} {p}", v))
            else:
                variants.append((e, p, v))

    def cand(e, p, v, t, b):
        return Candidate(engine=e, precision=p, threads=t, batch=b, variant=v, shape=(b, *shape1[1:]),
                         graph_optimization=dep.operator_fusion, memory_optimization=dep.memory_optimization)

    # 2. screen: best case per variant
    screen = [cand(e, p, v, max(threads), 1) for e, p, v in variants]
    if progress:
        progress("screening engines x precisions", 0, len(screen))
    screened = measure(screen, "screen") if screen else []
    for m in screened:
        m.stage = "screen"
    ref = _reference_accuracy(screened, model)
    survivors = []
    for m in screened:
        c = m.candidate
        what = f"{c.engine} {c.precision}"
        if not m.ok:
            pruned.append(Pruned(what, f"failed: {m.reason}"))
            continue
        if ref is not None and m.accuracy is not None and ref - m.accuracy > cfg.evaluation.max_accuracy_drop + 1e-9:
            pruned.append(Pruned(what, f"accuracy {m.accuracy:.1%} vs {ref:.1%} at fp32: drop above "
                                       f"{cfg.evaluation.max_accuracy_drop:.1%}"))
            continue
        if perf.target_latency and m.latency(perf.latency_statistic) > perf.target_latency * PRUNE_MISS:
            pruned.append(Pruned(f"{what} other threads/batches", f"{fmt_ms(m.latency(perf.latency_statistic))} at "
                                 f"{c.threads} threads, batch 1 already misses {fmt_ms(perf.target_latency)}"))
            continue
        better = _dominated(m, [s for s in screened if s.ok])
        if better is not None:
            b = better.candidate
            pruned.append(Pruned(what, f"dominated by {b.engine} {b.precision}: {fmt_ms(better.latency())} vs "
                                       f"{fmt_ms(m.latency())}, {fmt_bytes(better.memory_bytes)} vs {fmt_bytes(m.memory_bytes)}"))
            continue
        survivors.append(m)

    # 3. expand survivors: threads, then batches while they meet the latency target
    measured = list(screened)
    todo = [cand(c.engine, c.precision, c.variant, t, 1) for m in survivors for c in [m.candidate] for t in threads]
    if progress:
        progress("measuring thread counts", 0, len(todo))
    expanded = measure(todo, "expand") if todo else []
    measured += expanded
    prev = expanded
    for b in batches[1:]:
        grow = [replace(m.candidate, batch=b, shape=(b, *shape1[1:])) for m in prev if m.ok and _fits(m, cfg)]
        if not grow:
            pruned.append(Pruned(f"batch {b} and above", "every configuration at the previous batch already misses "
                                                         "the latency or memory target"))
            break
        if progress:
            progress(f"measuring batch {b}", 0, len(grow))
        prev = measure(grow, "expand")
        measured += prev
    final = [m for m in measured if m.stage == "expand"] or measured
    for m in final:  # accuracy was measured per variant at the screen; it holds for every thread/batch
        if m.accuracy is None:
            src = next((s for s in screened if s.candidate.variant == m.candidate.variant and s.accuracy is not None), None)
            if src:
                m.accuracy, m.accuracy_metric = src.accuracy, src.accuracy_metric
    chosen, met = choose(final, cfg, ref)
    checks = check_targets(chosen, cfg, ref) if chosen else []
    return TuneResult(model=model.name, shape=list(shape1), chosen=chosen, met=met, checks=checks,
                      measurements=measured, pruned=pruned, reference_accuracy=ref, notes=notes)


def _fits(m: Measurement, cfg: DeploymentConfig) -> bool:
    p = cfg.performance
    return not ((p.target_latency and m.latency(p.latency_statistic) > p.target_latency)
                or (p.max_memory and m.memory_bytes and m.memory_bytes > p.max_memory))


def _reference_accuracy(screened: list[Measurement], model) -> float | None:
    """Accuracy of the FP32 model on its native engine (else any FP32 row)."""
    native = engines.resolve("auto", model.format)
    fp32 = [m for m in screened if m.ok and m.accuracy is not None and m.candidate.precision == "fp32"]
    fp32.sort(key=lambda m: m.candidate.engine != native)
    return fp32[0].accuracy if fp32 else None


def default_produce(cfg: DeploymentConfig) -> Produce:
    """The model for (engine, precision): run-time precisions directly; others from ``edgedeploy.optimize``."""
    import importlib.util

    from edgedeploy.benchmarking.plan import precision_skip

    import atexit
    import shutil

    from edgedeploy.fsio import make_scratch_dir

    workdir = str(make_scratch_dir("tune"))
    atexit.register(shutil.rmtree, workdir, True)  # the chosen variant is copied out before the process ends

    def produce(model, engine: str, precision: str):
        if precision in RUNTIME_PRECISIONS and (precision == "fp32" or not precision_skip(engine, precision)):
            return Variant(model=str(cfg.model), runtime_precision=precision)
        if importlib.util.find_spec("edgedeploy.optimize") is None:
            return f"a {precision} model for {engine} needs edgedeploy.optimize, not in this installation"
        from edgedeploy import optimize as opt

        if not callable(getattr(opt, "optimize", None)):
            return f"a {precision} model for {engine} needs edgedeploy.optimize.optimize(), not available yet"
        out = f"{workdir}/{model.name}-{engine}-{precision}.onnx"
        try:
            res = opt.optimize(model, out, engine=engine, precision=precision,
                               max_accuracy_drop=100 * cfg.evaluation.max_accuracy_drop,  # YAML fraction → points
                               card=cfg.card, calib=cfg.evaluation.calibration, data=cfg.evaluation.data,
                               task=model.zoo.task if model.zoo else None)
        except Exception as exc:  # one variant the optimiser cannot make is a pruned row, not a failed search
            log.info("optimiser failed for %s %s", engine, precision, exc_info=True)
            return f"optimiser could not make it: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        path = getattr(res, "path", None) or getattr(res, "output", None) or out
        acc = getattr(res, "accuracy_after", None)
        return Variant(model=str(path), runtime_precision="fp32", accuracy=acc if isinstance(acc, float) else None,
                       note=f"made by edgedeploy.optimize ({precision})")

    return produce


def bench_measure(cfg: DeploymentConfig, *, on_result: Callable[[Measurement], None] | None = None) -> Measure:
    """Measure candidates with the benchmark harness: one fresh process each (latency, memory, power)."""
    from dataclasses import fields

    from edgedeploy.benchmarking import BenchConfig, run_one

    known = {f.name for f in fields(BenchConfig)}
    s = cfg.search

    def measure(cands: list[Candidate], stage: str) -> list[Measurement]:
        out = []
        for c in cands:
            extra, notes = {}, []
            for opt, default in (("graph_optimization", True), ("memory_optimization", False)):
                if opt in known:
                    extra[opt] = getattr(c, opt)
                elif getattr(c, opt) != default:
                    notes.append(f"{opt}={getattr(c, opt)} is applied when the deployment runs; the benchmark "
                                 "harness measured the engine's default for it")
            with_acc = stage == "screen" and cfg.evaluation.enable
            if c.variant.model != str(cfg.model) and "source" in known:
                extra["source"] = str(cfg.model)  # a derived model (INT8) is scored like the model it stands for
            bc = BenchConfig(model=c.variant.model, engine=c.engine, shape=c.shape, precision=c.variant.runtime_precision,
                             threads=c.threads, runs=s.screen_runs if stage == "screen" else s.runs,
                             time_budget_s=s.time_budget / 1000 / (3 if stage == "screen" else 1), warmup=2,
                             dataset=cfg.evaluation.dataset if with_acc else None, samples=cfg.evaluation.samples,
                             timeout_s=s.timeout / 1000, **extra)
            r = run_one(bc)
            m = Measurement(candidate=c, ok=r.ok, stage=stage, reason=r.reason, latency_ms=dict(r.latency_ms),
                            memory_bytes=r.model_memory_mb * 2**20 if r.model_memory_mb is not None else None,
                            power_w=r.power_w, power_source=r.power_source, power_measured=r.power_measured,
                            throughput=r.throughput_ips, accuracy=r.accuracy if r.accuracy is not None else c.variant.accuracy,
                            accuracy_metric=r.accuracy_metric, engine_version=r.engine_version,
                            method=f"measured: median of {r.latency_ms.get('runs', 0)} runs, fresh process",
                            notes=notes + list(r.notes))
            if on_result:
                on_result(m)
            out.append(m)
        return out

    return measure


def precision_rank(p: str) -> int:
    return PRECISION_ORDER.index(p)
