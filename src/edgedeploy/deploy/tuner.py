"""Find the best deployment plan that meets the deployment's targets, by measuring, with pruning.

Search space: :class:`~edgedeploy.plan.DeploymentPlan` s — engine x precision x threads x batch
(with the config's ``memory_optimization`` and ``operator_fusion`` in every plan's engine
options, so they are measured), within what the config allows
(:class:`~edgedeploy.deploy.config.Deployment`), shaped by the CPU's instruction set
(:func:`candidate_variants`, :mod:`edgedeploy.hardware.isa`): BF16 only where the CPU has it
natively (AVX512_BF16 or AMX), mixed INT8+BF16 on OpenVINO there (the INT8 model with
``INFERENCE_PRECISION_HINT`` bf16 for the layers left in float). **Every engine's own default**
(``open_default``, the anchor: the FP32 model opened as its users do) is a candidate too, so the
result is at worst the best untuned engine. Three stages:

1. **Static pruning**, nothing run: engines that cannot read the model or are not installed,
   precisions an engine has no way to run (no switch, and no optimiser to make such a model).
2. **Screen**: each (engine, precision) once at the most threads and batch 1 — its best case
   for latency — with accuracy measured where the model has ground truth. A variant is not
   expanded when it already misses the latency target there by more than 2x (fewer threads
   and larger batches are slower per call, short of contention on a shared machine), when it
   loses more accuracy than allowed, or when another variant is at least as good on latency
   (beyond the noise: its interval at or below), memory and measured power alike and clearly
   better on one (dominated).
3. **Expand** the survivors over thread counts and batch sizes with full runs; batches grow
   until one misses the latency target.

**Rules that keep decisions from flipping** (:func:`check_targets`, :func:`choose`):

- A latency target is met only when the upper end of the 95% confidence interval of the
  statistic (p50 by default; distribution-free, from the timed runs of one fresh process,
  :mod:`edgedeploy.engines.timing`) is at or below it. Memory (model-attributable peak RSS) is
  one reading per fresh process, compared as is.
- Choice and verdict are taken on repeated measurements: every finalist plan is measured
  ``search.repeats`` times in all (fresh processes, in rounds) and represented by its least
  disturbed repeat (the lowest upper bound). Other processes on the machine only ever add
  time, so the least disturbed repeat is the machine's own figure; one busy moment does not
  flip the choice or the verdict.
- A figure that was estimated, not measured (power without a sensor), or a latency miss
  measured while other processes used more than a quarter of the CPUs (share ``b``) in the
  least disturbed repeat and small enough for that load to explain (the interval's lower end
  divided by the slowdown 1/(1 - b), at most 2x, within the target), never decides: its check is *unverifiable here*, the configuration's policy (``performance.estimated``: warn,
  fail, ignore) says what that does to the verdict, and the choice ignores it.
- **Anchors win ties** (:func:`~edgedeploy.engines.timing.clears_noise`): a tuned plan is chosen over the best anchor that
  meets the targets only when its throughput interval lies entirely above the anchor's (its
  advantage clears the noise band of the two measurements); otherwise the anchor is chosen.
  Every candidate is measured in its own fresh process, one after another, so no candidate's
  spinning worker threads (ORT spins after a run by default) can slow another.
- Choice: among plans that miss no target, the highest throughput (one stream: batch over the
  p50 interval); plans whose throughput intervals come within 3% of the best are tied, and a more precise plan
  within 13% of a less precise best (:data:`PRECISION_TIE`: less precision must clearly pay); among those, the
  lowest latency (again with ties by interval, and the same 10% band for the more precise), then the smallest memory (ranges over repeats, at least 10% or 2 MiB
  wide, that overlap are tied), then the plan that uses
  the least: fewer threads, smaller batch, the more precise precision, a session that takes any
  input size, the engine's order in ``ENGINES``. Where ``deployment.input_shape`` fixes the size of
  a model whose input is dynamic, every expanded plan is also measured compiled for that one shape
  (``EngineOptions.input_shape``), on the engines that can. When none meets every target, the
  closest (smallest worst-case miss).

Measuring and model-producing functions are injected (``measure``, ``produce``), so the
search is tested without engines; by default they are the benchmark harness
(:func:`edgedeploy.benchmarking.run_one`) and the optimiser (``edgedeploy.optimize``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from edgedeploy import engines
from edgedeploy.deploy.config import PRECISION_ORDER, DeploymentConfig
from edgedeploy.engines import EngineOptions
from edgedeploy.engines.timing import clears_noise
from edgedeploy.errors import UserError, VerdictError
from edgedeploy.plan import DeploymentPlan, ModelFile
from edgedeploy.units import fmt_bytes, fmt_ms, fmt_watts
from edgedeploy.vocab import RUNTIME_PRECISIONS

log = logging.getLogger(__name__)

BUSY = 0.25  # other processes using more than this share of the CPUs make a latency miss unverifiable ...
MAX_EXPLAINED = 2.0  # ... when the load can explain it: a slowdown of at most 1 / (1 - share), and never beyond 2x
TIE = 0.03  # throughputs within 3% (beyond their intervals) are a tie: below what these machines tell apart
# A less precise plan must be faster than a more precise one by more than 10% to be taken over it. Between
# precisions the gap is often a few per cent (PP-LCNet on OpenVINO: INT8 0.55-0.56 ms vs FP16 0.59 ms, best of 3
# fresh processes, 2 cores), and the same plan's best-of-3 moves by up to ~5% from one deploy to the next: at
# 3% the choice flipped between the two in 2 of 5 runs of the same YAML. Giving up precision for less than
# that is not worth it, and a band wider than run-to-run movement keeps the decision the same.
PRECISION_TIE = 0.10
MEMORY_TIE = 0.10, 2 << 20  # memory readings within 10% or 2 MiB are a tie: peak RSS moves that much run to run
PRUNE_MISS = 2.0  # a variant missing the latency target by more than this at its best case is not expanded
# (not 1.0: on a shared machine fewer threads can beat more, so a near miss is still worth a look)


@dataclass(frozen=True)
class Variant:
    """A model file for one (engine, precision), the engine's run-time precision for it, and the
    accuracy its producer measured (e.g. the optimiser's own evaluation)."""

    model: ModelFile
    runtime_precision: str = "fp32"
    accuracy: float | None = None

    def __post_init__(self):
        if not isinstance(self.model, ModelFile):
            object.__setattr__(self, "model", ModelFile.of(self.model))


@dataclass
class Measurement:
    """What was measured for one plan (ms, bytes, W); ``stage`` is "screen" or "expand"."""

    plan: DeploymentPlan
    ok: bool
    stage: str = "expand"
    reason: str = ""
    latency_ms: dict = field(default_factory=dict)  # p50, p90, p99 (+ _low/_high: the 95% interval), ...
    memory_bytes: float | None = None
    memory_high: float | None = None  # the highest reading over repeats (memory_bytes: the lowest)
    power_w: float | None = None
    power_source: str = ""
    power_measured: bool = False
    throughput: float | None = None
    accuracy: float | None = None
    accuracy_metric: str | None = None
    engine_version: str = ""
    method: str = ""
    engine_settings: dict = field(default_factory=dict)  # read back from the engine in the measuring process
    others_load: float | None = None  # share of the CPUs other processes used during the timed runs
    notes: list[str] = field(default_factory=list)

    def latency(self, stat: str = "p50") -> float | None:
        return self.latency_ms.get(stat)

    def interval(self, stat: str = "p50") -> tuple[float, float]:
        """The 95% interval of ``stat`` (the point value twice where no interval was measured)."""
        v = self.latency(stat)
        return self.latency_ms.get(f"{stat}_low", v), self.latency_ms.get(f"{stat}_high", v)

    def memory_interval(self) -> tuple[float, float]:
        """(lowest, highest) memory reading over repeats, at least 10% or 2 MiB wide: peak RSS moves that
        much from one fresh process to the next."""
        low = self.memory_bytes or 0.0
        high = max(self.memory_high or low, low * (1 + MEMORY_TIE[0]), low + MEMORY_TIE[1])
        return low, high

    def throughput_interval(self) -> tuple[float, float]:
        """(low, high) items/s of one stream, from the p50 interval: batch / latency. The harness's own
        throughput (runs / wall time) follows the mean, which one stalled run moves; the choice does not."""
        lo, hi = self.interval("p50")
        if not lo or not hi:
            return self.throughput or 0.0, self.throughput or 0.0
        return self.plan.batch * 1000 / hi, self.plan.batch * 1000 / lo

    def to_dict(self) -> dict:
        d = asdict(self)
        d["plan"] = self.plan.to_dict()
        return d


@dataclass
class Pruned:
    what: str
    reason: str


MET, MISSED, UNVERIFIABLE = "met", "missed", "unverifiable"


@dataclass
class TargetCheck:
    """One target against one measurement. ``status``: met, missed, or unverifiable (the figure was
    estimated here, not measured; the policy ``performance.estimated`` decides what that means)."""

    name: str
    target: str
    measured: str
    status: str
    how: str  # "measured: ...", "estimated (no sensor)", ...

    @property
    def met(self) -> bool:
        return self.status == MET

    def to_dict(self) -> dict:
        return asdict(self) | {"met": self.met}


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

    @property
    def plan(self) -> DeploymentPlan | None:
        return self.chosen.plan if self.chosen else None

    def to_dict(self) -> dict:
        return {"model": self.model, "shape": self.shape, "met": self.met,
                "chosen": self.chosen.to_dict() if self.chosen else None,
                "checks": [c.to_dict() for c in self.checks], "reference_accuracy": self.reference_accuracy,
                "measurements": [m.to_dict() for m in self.measurements],
                "pruned": [asdict(p) for p in self.pruned], "notes": self.notes}


Measure = Callable[[list[DeploymentPlan], str], list[Measurement]]
Produce = Callable[[object, str, str], "Variant | str"]


def check_targets(m: Measurement, cfg: DeploymentConfig, reference_accuracy: float | None) -> list[TargetCheck]:
    """Each target of ``cfg.performance`` (and the accuracy limit) against measurement ``m``, by the
    rules in the module docstring."""
    perf, stat = cfg.performance, cfg.performance.latency_statistic
    checks = []
    if perf.target_latency is not None:
        lat, (low, high) = m.latency(stat), m.interval(stat)
        met = high is not None and high <= perf.target_latency
        shown = fmt_ms(lat) if high == lat else f"{fmt_ms(lat)} (95% upper bound {fmt_ms(high)})"
        how = (m.method or "measured") + "; met when the 95% upper bound is within the target"
        status = MET if met else MISSED
        busy = m.others_load or 0.0
        if not met and busy > BUSY and low / min(1 / (1 - busy), MAX_EXPLAINED) <= perf.target_latency:
            # a miss the other processes' share of the CPUs can explain says little about the plan
            status = UNVERIFIABLE
            how = (f"unverifiable here: other processes used {busy:.0%} of the CPUs while its least disturbed "
                   f"repeat was timed; measure on a quiet machine; policy estimated: {perf.estimated}")
        checks.append(TargetCheck("latency", f"≤ {fmt_ms(perf.target_latency)} ({stat})", shown, status, how))
    if perf.max_memory is not None:
        met = m.memory_bytes is not None and m.memory_bytes <= perf.max_memory
        checks.append(TargetCheck("memory", f"≤ {fmt_bytes(perf.max_memory)}", fmt_bytes(m.memory_bytes),
                                  MET if met else MISSED, "measured: model-attributable peak RSS"))
    if perf.power_consumption is not None:
        if m.power_measured:
            met = m.power_w is not None and m.power_w <= perf.power_consumption
            checks.append(TargetCheck("power", f"≤ {fmt_watts(perf.power_consumption)}", fmt_watts(m.power_w),
                                      MET if met else MISSED, m.power_source or "measured"))
        elif perf.estimated != "ignore":
            checks.append(TargetCheck("power", f"≤ {fmt_watts(perf.power_consumption)}",
                                      f"~{fmt_watts(m.power_w)} (estimate)", UNVERIFIABLE,
                                      f"unverifiable here: no power sensor ({m.power_source or 'estimated'}); "
                                      f"policy estimated: {perf.estimated}"))
    if reference_accuracy is not None and cfg.evaluation.enable and m.accuracy is not None:
        drop = reference_accuracy - m.accuracy
        checks.append(TargetCheck("accuracy", f"drop ≤ {cfg.evaluation.max_accuracy_drop:.1%}",
                                  f"{m.accuracy:.1%} ({-drop:+.1%})",
                                  MET if drop <= cfg.evaluation.max_accuracy_drop + 1e-9 else MISSED,
                                  f"measured: {m.accuracy_metric}"))
    return checks


def verdict(checks: list[TargetCheck], policy: str) -> bool:
    """Whether ``checks`` pass: nothing missed, and nothing unverifiable when the policy is ``fail``."""
    return all(c.status == MET or (c.status == UNVERIFIABLE and policy != "fail") for c in checks)


def _miss(m: Measurement, cfg: DeploymentConfig) -> float:
    """Worst ratio measured/target over the measured targets (≤ 1 when all are met)."""
    p = cfg.performance
    if not m.ok:
        return 1e9
    ratios = []
    if p.target_latency:
        ratios.append(m.interval(p.latency_statistic)[1] / p.target_latency)
    if p.max_memory and m.memory_bytes is not None:
        ratios.append(m.memory_bytes / p.max_memory)
    if p.power_consumption and m.power_w is not None and m.power_measured:
        ratios.append(m.power_w / p.power_consumption)
    return max(ratios, default=0.0)


def least(plan: DeploymentPlan) -> tuple:
    """The deterministic last tie-break: the plan that uses the least."""
    order = list(engines.ENGINES)
    return (plan.threads or 0, plan.batch, -PRECISION_ORDER.index(plan.precision.value),
            plan.options.input_shape is not None,  # a session that takes any size, unless fixing it pays
            order.index(plan.engine.value) if plan.engine.value in order else len(order))


def precision_band(plan: DeploymentPlan, best: DeploymentPlan) -> float:
    """The extra tie band ``plan`` gets against ``best``: :data:`PRECISION_TIE` when ``plan`` is the more precise."""
    more_precise = PRECISION_ORDER.index(plan.precision.value) > PRECISION_ORDER.index(best.precision.value)
    return PRECISION_TIE if more_precise else 0.0


def _tied(ms: list[Measurement], interval) -> list[Measurement]:
    """Those whose ``interval(m)`` (low, high) reaches the best one's low end (lower is better)."""
    best = min(ms, key=lambda m: interval(m)[1])
    return [m for m in ms if interval(m)[0] <= interval(best)[1]]


def _prefer_anchor(chosen: Measurement, feasible: list[Measurement]) -> Measurement:
    """The best feasible anchor instead of ``chosen`` unless ``chosen``'s advantage clears the noise band."""
    anchors = [m for m in feasible if m.plan.untuned]
    if chosen.plan.untuned or not anchors:
        return chosen
    best = max(anchors, key=lambda m: m.throughput_interval()[0])
    lo, hi = chosen.throughput_interval()
    a_lo, a_hi = best.throughput_interval()
    return chosen if clears_noise((-hi, -lo), (-a_hi, -a_lo)) else best  # higher throughput: negated, lower is better


def choose(measured: list[Measurement], cfg: DeploymentConfig, reference_accuracy: float | None
           ) -> tuple[Measurement | None, bool]:
    """(best measurement, whether it passes every target under the policy for estimates); see the
    module docstring for the rules. Unverifiable (estimated) figures never steer the choice."""
    ok = [m for m in measured if m.ok]
    if not ok:
        return None, False
    stat = cfg.performance.latency_statistic
    feasible = [m for m in ok if all(c.status != MISSED for c in check_targets(m, cfg, reference_accuracy))]
    if not feasible:
        return min(ok, key=lambda m: (_miss(m, cfg), m.latency(stat))), False
    best = max(feasible, key=lambda m: m.throughput_interval()[0])
    best_low = best.throughput_interval()[0]
    tied = [m for m in feasible if m.throughput_interval()[1] * (1 + TIE + precision_band(m.plan, best.plan)) >= best_low]
    fastest = min(tied, key=lambda m: m.interval(stat)[1])
    tied = [m for m in tied if m.interval(stat)[0] <= fastest.interval(stat)[1] * (1 + precision_band(m.plan, fastest.plan))]
    tied = _tied(tied, Measurement.memory_interval)
    chosen = _prefer_anchor(min(tied, key=lambda m: least(m.plan)), feasible)
    return chosen, verdict(check_targets(chosen, cfg, reference_accuracy), cfg.performance.estimated)


def _dominated(a: Measurement, others: list[Measurement]) -> Measurement | None:
    """Another measurement no worse than ``a`` on latency (its interval at or below a's, within 3%), memory,
    measured power and accuracy, and clearly better on latency (by more than 3%) or memory (10% less). Noisy
    screens have wide intervals: then nothing is pruned on them, and the full runs decide."""
    a_lo = a.interval()[0]
    for b in others:
        if b is a or not b.ok:
            continue
        b_hi = b.interval()[1]
        power_ok = not (a.power_measured and b.power_measured) or (b.power_w or 0) <= (a.power_w or 0)
        if (b_hi <= a_lo * (1 + TIE) and (b.memory_bytes or 0) <= (a.memory_bytes or 0) and power_ok
                and (b.accuracy or 0) >= (a.accuracy or 0)
                and (b_hi < a_lo * (1 - TIE) or (b.memory_bytes or 0) < (a.memory_bytes or 0) * 0.9)):
            return b
    return None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def tune(cfg: DeploymentConfig, *, measure: Measure | None = None, produce: Produce | None = None,
         cores: int | None = None, progress: Callable[[str, int, int], None] | None = None, isa=None) -> TuneResult:
    """Search, prune and choose; see the module docstring. ``progress(stage, done, total)``;
    ``isa``: the CPU's :class:`~edgedeploy.hardware.isa.Isa` (default: this machine's)."""
    from edgedeploy.benchmarking import resolve_shape
    from edgedeploy.ingest import load_model

    measure = measure or bench_measure(cfg)
    if produce is None:  # callers that keep the made files (deploy) pass their own working directory
        import atexit
        import shutil

        from edgedeploy.fsio import make_scratch_dir

        workdir = str(make_scratch_dir("tune"))
        atexit.register(shutil.rmtree, workdir, True)  # the caller copies what it keeps before the process ends
        produce = default_produce(cfg, workdir)
    cores = cores or usable_cores()
    dep, perf = cfg.deployment, cfg.performance
    model = load_model(cfg.model, cfg.params)
    shape1 = resolve_shape(model, dep.input_shape, 1)
    notes, pruned = [], []
    threads = dep.threads(cores)
    if dep.thread_num != "auto" and max(dep.thread_num) > cores:
        notes.append(f"thread_num {max(dep.thread_num)} > the {cores} cores usable here: tried up to {cores}")
    batches = dep.batches()

    # 1. static pruning; every runnable engine's own default is a candidate (the anchor)
    from edgedeploy.hardware.isa import detect

    isa = isa or detect()
    notes.append(f"CPU: {isa.model} ({isa.kind}); search shaped by its ISA")
    variants: list[tuple[str, str, Variant]] = []
    anchors: list[DeploymentPlan] = []
    no_anchor = _anchor_excluded(dep, cores)
    if no_anchor:
        pruned.append(Pruned("engine defaults (anchors)", no_anchor))
    for e in dep.engines or list(engines.ENGINES):
        why = engines.runnable(e, model.format) or (None if engines.available(e) else
                                                    f"not installed: {engines.spec(e).install}")
        if why:
            pruned.append(Pruned(e, why))
            continue
        if not no_anchor:
            anchors.append(DeploymentPlan(engine=e, precision="fp32", model=ModelFile.of(cfg.model, cfg.params),
                                          untuned=True, shape=tuple(shape1)))
        variants += _variants(e, dep.precisions(), model, produce, isa, pruned)

    _int8_decision(cfg, variants, pruned, notes)

    def plan(e: str, p: str, v: Variant, t: int, b: int) -> DeploymentPlan:
        options = EngineOptions(threads=t, graph_optimization=dep.operator_fusion,
                                memory_optimization=dep.memory_optimization, precision=v.runtime_precision)
        return DeploymentPlan(engine=e, precision=p, model=v.model, options=options, batch=b, shape=(b, *shape1[1:]))

    def run(plans: list[DeploymentPlan], stage: str, what: str, done: int = 0, total: int | None = None):
        """``measure`` one plan at a time (each is its own fresh process anyway), saying after each how far."""
        total = total or len(plans)
        if progress and not done:
            progress(what, 0, total)
        out = []
        for i, p in enumerate(plans, 1):
            out += measure([p], stage)
            if progress:
                progress(what, done + i, total)
        return out

    # 2. screen: best case per variant, and the anchors
    screen = [plan(e, p, v, max(threads), 1) for e, p, v in variants] + anchors
    accuracy_of = {(e, p): v.accuracy for e, p, v in variants}
    screened = run(screen, "screen", "screening engines x precisions")
    for m in screened:
        m.stage = "screen"
        if m.accuracy is None:  # no ground truth in the harness: the producer's own evaluation, if any
            m.accuracy = accuracy_of.get((m.plan.engine, m.plan.precision))
    ref = _reference_accuracy(screened, model)
    survivors = []
    for m in screened:
        c = m.plan
        what = c.label if c.untuned else f"{c.engine} {c.precision}"
        if not m.ok:
            pruned.append(Pruned(what, f"failed: {m.reason}"))
            continue
        if ref is not None and m.accuracy is not None and ref - m.accuracy > cfg.evaluation.max_accuracy_drop + 1e-9:
            pruned.append(Pruned(what, f"accuracy {m.accuracy:.1%} vs {ref:.1%} at fp32: drop above "
                                       f"{cfg.evaluation.max_accuracy_drop:.1%}"))
            continue
        if perf.target_latency and m.interval(perf.latency_statistic)[0] > perf.target_latency * PRUNE_MISS:
            pruned.append(Pruned(f"{what} other threads/batches", f"{fmt_ms(m.latency(perf.latency_statistic))} at "
                                 f"{c.threads} threads, batch 1 already misses {fmt_ms(perf.target_latency)}"))
            continue
        better = _dominated(m, [s for s in screened if s.ok])
        if better is not None:
            b = better.plan
            pruned.append(Pruned(what, f"dominated by {b.label if b.untuned else f'{b.engine} {b.precision}'}: {fmt_ms(better.latency())} vs "
                                       f"{fmt_ms(m.latency())}, {fmt_bytes(better.memory_bytes)} vs {fmt_bytes(m.memory_bytes)}"))
            continue
        survivors.append(m)

    # 3. expand survivors: threads, then batches while they meet the latency target
    measured = list(screened)
    todo = [DeploymentPlan(**{**vars(m.plan), "options": m.plan.options.replace(threads=t)})
            for m in survivors if not m.plan.untuned for t in threads]  # an anchor is the engine's defaults, as is
    if dep.input_shape and engines.dynamic_input(model):  # the size is fixed: compiling for it may pay (measured)
        todo += [p.with_options(input_shape=p.shape) for p in todo if "input_shape" in engines.spec(p.engine).options]
    expanded = run(todo, "expand", "measuring thread counts")
    measured += expanded
    prev = expanded
    for b in batches[1:]:
        grow = [m.plan.with_batch(b) for m in prev if m.ok and _fits(m, cfg)]
        if not grow:
            pruned.append(Pruned(f"batch {b} and above", "every configuration at the previous batch already misses "
                                                         "the latency or memory target"))
            break
        prev = run(grow, "expand", f"measuring batch {b}")
        measured += prev
    final = [m for m in measured if m.stage == "expand"] + [m for m in survivors if m.plan.untuned] or measured
    screened_accuracy = {(s.plan.engine, s.plan.precision): (s.accuracy, s.accuracy_metric)
                         for s in screened if s.accuracy is not None}
    for m in final:  # accuracy was measured per variant at the screen; it holds for every thread/batch
        if m.accuracy is None:
            key = (m.plan.engine, m.plan.precision)
            m.accuracy, m.accuracy_metric = screened_accuracy.get(key, (None, m.accuracy_metric))
    final = [m for m in final if m.ok] or final
    if final and final[0].ok and cfg.search.repeats > 1:  # every finalist again, in rounds: one busy moment cannot pick the winner
        rounds = [run([m.plan for m in final], "repeat", "repeating the finalists", k * len(final),
                      (cfg.search.repeats - 1) * len(final)) for k in range(cfg.search.repeats - 1)]
        measured += [m for r in rounds for m in r]
        final = [_settle([m, *(r[i] for r in rounds)], perf.latency_statistic) for i, m in enumerate(final)]
    chosen, met = choose(final, cfg, ref)
    checks = check_targets(chosen, cfg, ref) if chosen else []
    if any(c.status == UNVERIFIABLE for c in checks):
        notes.append(f"{', '.join(c.name for c in checks if c.status == UNVERIFIABLE)} target unverifiable here "
                     f"(estimated, or measured on a busy machine): it did not steer the choice; "
                     f"policy estimated: {perf.estimated}")
    return TuneResult(model=model.name, shape=list(shape1), chosen=chosen, met=met, checks=checks,
                      measurements=measured, pruned=pruned, reference_accuracy=ref, notes=notes)


REFUSED = "optimiser could not make it"


def _int8_decision(cfg: DeploymentConfig, variants: list, pruned: list[Pruned], notes: list[str]) -> None:
    """INT8 asked for (``precision: int8``) but refused by the optimiser on every engine (over the
    accuracy budget; speed is judged by the search, not here): exit 1 with each engine's figures; with ``precision: auto`` the
    fallback is a note that says why — never a silent FP16/FP32. An engine that cannot run INT8 at
    all stays a pruned row."""
    if "int8" not in cfg.deployment.precisions() or any(p == "int8" for _, p, _ in variants):
        return
    why = {x.what: x.reason for x in pruned if x.what.endswith(" int8") and x.reason.startswith(REFUSED)}
    if not why:
        return
    lines = "; ".join(f"{w}: {r}" for w, r in why.items())
    if cfg.deployment.precision != "auto":
        raise VerdictError(f"precision int8 asked for, but no INT8 model could be made — {lines}. Nothing was "
                           "deployed; raise evaluation.max_accuracy_drop, give more calibration data, or set "
                           "precision: auto to accept a float precision", figures={"int8": why})
    notes.append(f"INT8 not used (precision auto falls back to float): {lines}")


def _settle(repeats: list[Measurement], stat: str) -> Measurement:
    """Of repeated measurements of one plan, the least disturbed (lowest upper bound of ``stat``), with the lowest
    memory reading and their spread, keeping the first one's stage and accuracy. Other processes only ever add
    time, so that is the machine's own figure."""
    first = repeats[0]
    ok = [m for m in repeats if m.ok]
    if not ok:
        return first
    best = min(ok, key=lambda m: m.interval(stat)[1])
    readings = [m.memory_bytes for m in ok if m.memory_bytes is not None]
    if readings:  # memory, like time, only grows with disturbance: the lowest reading, and the spread
        best.memory_bytes, best.memory_high = min(readings), max(readings)
    best.stage = first.stage
    if best.accuracy is None:
        best.accuracy, best.accuracy_metric = first.accuracy, first.accuracy_metric
    if len(repeats) > 1:
        best.method = f"{best.method}; least disturbed of {len(repeats)} repeats"
    return best


def judge(plan: DeploymentPlan, cfg: DeploymentConfig, reference_accuracy: float | None,
          measure: Measure) -> tuple[Measurement, bool]:
    """The verdict on ``plan`` as deploy gives it: ``cfg.search.repeats`` fresh-process measurements, judged on
    the least disturbed by :func:`check_targets` and the policy for estimates (``doctor`` uses this)."""
    m = _settle(measure([plan] * cfg.search.repeats, "repeat"), cfg.performance.latency_statistic)
    return m, m.ok and verdict(check_targets(m, cfg, reference_accuracy), cfg.performance.estimated)


def _fits(m: Measurement, cfg: DeploymentConfig) -> bool:
    p = cfg.performance
    return not ((p.target_latency and m.interval(p.latency_statistic)[1] > p.target_latency)
                or (p.max_memory and m.memory_bytes and m.memory_bytes > p.max_memory))


def _reference_accuracy(screened: list[Measurement], model) -> float | None:
    """Accuracy of the FP32 model on its native engine (else any FP32 row)."""
    native = engines.resolve("auto", model.format)
    fp32 = [m for m in screened if m.ok and m.accuracy is not None and m.plan.precision == "fp32"]
    fp32.sort(key=lambda m: (m.plan.untuned, m.plan.engine != native))  # an untuned OpenVINO may run BF16
    return fp32[0].accuracy if fp32 else None


def _anchor_excluded(dep, cores: int) -> str | None:
    """Why the engines' own defaults cannot be candidates here: the config fixes a setting they ignore."""
    if dep.memory_optimization:
        return "memory_optimization is on: an engine's defaults do not honour it"
    if not dep.operator_fusion:
        return "operator_fusion is off: an engine's defaults fuse operators"
    if dep.thread_num != "auto" and cores not in dep.threads(cores):
        return f"thread_num {dep.thread_num} leaves out {cores} threads, which an engine's defaults use"
    if 1 not in dep.batches():
        return "batch 1 is not allowed, and an anchor runs batch 1"
    return None


def isa_skip(isa, engine: str, precision: str) -> str | None:
    """Why (engine, precision) does not pay on this CPU (None if it may): BF16 without native BF16 is emulated."""
    if precision == "bf16" and not isa.native_bf16:
        return f"no native BF16 on this CPU ({isa.kind}; needs AVX512_BF16 or AMX): emulated, slower than FP32"
    return None


def _variants(engine: str, precisions: list[str], model, produce: Produce, isa, pruned: list[Pruned]
              ) -> list[tuple[str, str, Variant]]:
    """The (engine, precision, variant) candidates on ``engine`` this CPU makes worth measuring; the rest
    into ``pruned`` with the reason. Mixed INT8+BF16 (OpenVINO, CPUs with native BF16): the INT8 model with
    the float layers it kept run in BF16."""
    out = []
    for p in precisions:
        if p not in engines.spec(engine).precisions:
            pruned.append(Pruned(f"{engine} {p}", f"{engine} supports {', '.join(engines.spec(engine).precisions)}"))
            continue
        why = isa_skip(isa, engine, p)
        v = why or produce(model, engine, p)
        if isinstance(v, str):
            pruned.append(Pruned(f"{engine} {p}", v))
            continue
        out.append((engine, p, v))
        if p == "int8" and "precision" in engines.spec(engine).options and "bf16" in engines.spec(engine).precisions \
                and isa.native_bf16:
            out.append((engine, p, Variant(model=v.model, runtime_precision="bf16", accuracy=v.accuracy)))
    return out


def default_produce(cfg: DeploymentConfig, workdir: str) -> Produce:
    """The model for (engine, precision): run-time precisions directly; others made by ``edgedeploy.optimize``
    into ``workdir``. A variant the optimiser refuses (a :class:`UserError`, or a :class:`VerdictError` such as
    no INT8 model within the accuracy budget) is a pruned row; anything else it raises is a failure."""
    from edgedeploy.benchmarking.plan import precision_skip

    source = ModelFile.of(cfg.model, cfg.params)
    checker = None

    def produce(model, engine: str, precision: str):
        nonlocal checker
        if precision in RUNTIME_PRECISIONS and (precision == "fp32" or not precision_skip(engine, precision)):
            if precision == "fp32" or model.zoo is not None or not cfg.evaluation.enable:  # zoo: the harness scores it
                return Variant(model=source, runtime_precision=precision)
            from edgedeploy.optimize.runtime_check import RuntimeChecker

            # any other model: every run-time precision checked on the user's data, like INT8
            checker = checker or RuntimeChecker(cfg.model, card=cfg.card, calib=cfg.evaluation.calibration,
                                                data=cfg.evaluation.data)
            chk = checker.check(engine, precision)
            if chk.drop_points > 100 * cfg.evaluation.max_accuracy_drop + 1e-9:
                return (f"accuracy {100 * chk.accuracy:.2f} vs {100 * chk.reference:.2f} at fp32 ({chk.source}): "
                        f"{chk.drop_points:.2f} points down, above max_accuracy_drop "
                        f"{100 * cfg.evaluation.max_accuracy_drop:g} points")
            return Variant(model=source, runtime_precision=precision, accuracy=chk.accuracy)
        from edgedeploy import optimize as opt

        out = f"{workdir}/{model.name}-{engine}-{precision}.onnx"
        try:
            # goal size: the optimiser keeps its accuracy gate, but speed is the tuner's to judge (fresh processes,
            # repeats, the noise and precision bands); the optimiser's quick in-process check judged it a second
            # time, noisier, and flipped the seed YAML's exit code between runs
            res = opt.optimize(model, out, engine=engine, precision=precision, goal="size",
                               max_accuracy_drop=100 * cfg.evaluation.max_accuracy_drop,  # YAML fraction → points
                               card=cfg.card, calib=cfg.evaluation.calibration, data=cfg.evaluation.data,
                               task=model.zoo.task if model.zoo else None)
        except (UserError, VerdictError) as exc:  # the optimiser's "cannot" for this variant: pruned, said why
            log.info("optimiser made no %s model for %s: %s", precision, engine, exc)
            return f"{REFUSED}: {' '.join(str(exc).split())[:400]}"
        return Variant(model=ModelFile.of(res.output, source=str(cfg.model),
                                          made_by=f"edgedeploy.optimize {precision} for {engine}"),
                       accuracy=res.accuracy_after)

    return produce


def bench_measure(cfg: DeploymentConfig, *, on_result: Callable[[Measurement], None] | None = None) -> Measure:
    """Measure plans with the benchmark harness: one fresh process each (latency, memory, power), every
    engine option of the plan applied (:meth:`BenchConfig.from_plan`)."""
    from edgedeploy.benchmarking import BenchConfig, run_one

    s = cfg.search

    def measure(plans: list[DeploymentPlan], stage: str) -> list[Measurement]:
        out = []
        for plan in plans:
            with_acc = stage == "screen" and cfg.evaluation.enable
            bc = BenchConfig.from_plan(plan, runs=s.screen_runs if stage == "screen" else s.runs,
                                       time_budget_s=s.time_budget / 1000 / (3 if stage == "screen" else 1), warmup=2,
                                       dataset=cfg.evaluation.dataset if with_acc else None,
                                       samples=cfg.evaluation.samples, timeout_s=s.timeout / 1000)
            r = run_one(bc)
            m = Measurement(plan=plan, ok=r.ok, stage=stage, reason=r.reason, latency_ms=dict(r.latency_ms),
                            memory_bytes=r.model_memory_mb * 2**20 if r.model_memory_mb is not None else None,
                            power_w=r.power_w, power_source=r.power_source, power_measured=r.power_measured,
                            throughput=r.throughput_ips, accuracy=r.accuracy, accuracy_metric=r.accuracy_metric,
                            engine_version=r.engine_version, engine_settings=dict(r.engine_settings),
                            others_load=r.system_cpu_others,
                            method=f"measured: median of {r.latency_ms.get('runs', 0)} runs, fresh process",
                            notes=list(r.notes))
            if on_result:
                on_result(m)
            out.append(m)
        return out

    return measure
