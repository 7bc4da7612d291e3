"""Model optimisation that pays: graph passes, INT8/FP16 per engine, guarded by accuracy, measured.

>>> from edgedeploy.optimize import optimize
>>> r = optimize("pplcnet-orientation", "lcnet.int8.onnx", engine="auto", max_accuracy_drop=0.5)
>>> r.size_ratio, r.accuracy_drop_points, r.engine, r.speedup

Flow: the model (zoo name, ONNX, Paddle, or PyTorch: ``.pt``, ``.pt2``, ``module.py:factory``,
exported by :mod:`edgedeploy.ingest.torch_export`) → graph optimisation (:mod:`.graph`) →
calibration data (:mod:`.calibration`; the user's images through the model card,
:mod:`edgedeploy.datasets.user`) → for each target engine its own INT8 recipe, with the fewest
sensitive nodes kept in float until the budget holds (:mod:`.mixed`) → accuracy on held-out
samples, never the calibration ones (:mod:`.guard`, or the zoo task's metric) → latency of every
candidate, interleaved (:mod:`.latency`) → written only if within budget *and* faster than the best
FP32 configuration on its engine (``goal="size"``: smaller), atomically, with a report beside it
(``OUT`` → ``OUT.report.json``). Otherwise :class:`~edgedeploy.errors.VerdictError` and nothing
is written. Accuracy budgets are in points of the metric (0..100 scale) everywhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgedeploy.errors import UserError, VerdictError, did_you_mean
from edgedeploy.optimize import calibration, graph, latency
from edgedeploy.optimize.mixed import MAX_FLOAT_SHARE, RECIPES, int8_trial, over_budget_message
from edgedeploy.optimize.report import EngineTrial, OptimizeReport
from edgedeploy.vocab import Engine, Precision, parse

log = logging.getLogger(__name__)

__all__ = ["GOALS", "PRECISIONS", "RECIPES", "EngineTrial", "OptimizeReport", "optimize", "report_path"]

PRECISIONS = (Precision.INT8, Precision.FP16, Precision.FP32, Precision.AUTO)
GOALS = ("speed", "size")
DEFAULT_MAX_DROP = 1.0  # points: the seed's "<1% accuracy loss"
DISTILL_STEPS = 600
DISTILL_SAMPLES = 48
USER_CALIB_SAMPLES = 32  # calibration share of the user's data; the rest is held out for the guard


@dataclass(frozen=True)
class Candidate:
    """One model the optimiser may hand back: a precision on an engine (``graph``: graph passes applied)."""

    precision: Precision
    engine: Engine
    graph: bool = True

    @property
    def label(self) -> str:
        kind = "fp32-graph" if self.precision is Precision.FP32 and self.graph else str(self.precision)
        return f"{kind} on {self.engine}"


def _engines_for(engine: Engine, precision: Precision) -> list[Engine]:
    from edgedeploy import engines

    if engine is Engine.AUTO:
        return [e for e in RECIPES if engines.available(e)]
    engines.spec(engine)
    if engine not in RECIPES:
        raise UserError(f"engine {engine} cannot run an optimised ONNX model ({precision}): it runs "
                        f"{'/'.join(engines.spec(engine).formats)} models only; use engine "
                        f"{' or '.join(RECIPES)} (or auto)")
    if not engines.available(engine):
        raise UserError(f"engine {engine!r} is not installed: {engines.spec(engine).install}")
    return [engine]


class _TaskScorer:
    """Accuracy of a model file on an engine on a zoo task's generated data (seed :data:`EVAL_SEED`)."""

    def __init__(self, task: str, like: str | None, n: int | None, threads: int):
        from edgedeploy.evaluation.runner import TASKS

        self.task, self.like, self.n, self.threads = task, like, n, threads
        spec = TASKS[task]
        self.metric = spec.metric
        self.source = f"{spec.metric} on {n or spec.n} generated {spec.dataset} (seed {EVAL_SEED}, disjoint from " \
                      f"calibration seed {calibration.CALIB_SEED})"
        self._cache: dict[tuple[str, str], float] = {}

    def score(self, path: Path, engine: str):
        """No interval: the zoo task's evaluators report the value only."""
        return None

    def __call__(self, path: Path, engine: str) -> float:
        from edgedeploy import engines
        from edgedeploy.engines import EngineOptions
        from edgedeploy.evaluation.runner import evaluate

        from edgedeploy.optimize.guard import score_key

        key = (score_key(path), str(engine))
        if key not in self._cache:
            with engines.load(str(path), engine=engine, options=EngineOptions(threads=self.threads)) as s:
                self._cache[key] = evaluate(s, self.task, n=self.n, seed=EVAL_SEED, like=self.like).value
        return self._cache[key]


EVAL_SEED = 1000  # zoo-task accuracy data, disjoint from calibration data (calibration.CALIB_SEED)


def optimize(model, out: str | Path, *, engine: str = "auto", precision: str = "int8", calib=None,
             calib_method: str = "default", calib_samples: int | None = None, task: str | None = None,
             like: str | None = None, card=None, data=None, goal: str = "speed",
             max_accuracy_drop: float = DEFAULT_MAX_DROP, eval_samples: int | None = None,
             threads: int = 2, latency_rounds: int = 5, max_float_share: float = MAX_FLOAT_SHARE,
             min_calib_samples: int = calibration.MIN_SAMPLES, prune: float = 0.0,
             distill_steps: int = DISTILL_STEPS, distill_samples: int = DISTILL_SAMPLES,
             time_budget: float | None = None, progress: Callable[[str], None] | None = None) -> OptimizeReport:
    """Optimise ``model`` for ``engine`` and write it to ``out`` (.onnx) — only if it is worth it.

    model: zoo name, .onnx, Paddle model, or PyTorch (``nn.Module`` with ``card``, ``.pt``, ``.pt2``,
        ``module.py:factory``; exported first, see :func:`edgedeploy.ingest.torch_export.ingest`).
    precision: "int8" (static INT8, calibrated), "fp16", "fp32" (graph passes only) or "auto"
        (the fastest within budget: INT8, or the FP32 graph).
    engine: "onnxruntime", "openvino" or "auto" (each engine's INT8 is made and measured).
    calib: calibration data — the zoo task's generated data by default; or the user's own
        (:mod:`edgedeploy.datasets.user`: image folder, labelled class folders, CSV, video,
        .npy/.npz, or a list of arrays), images going through the model card.
    card: a :class:`~edgedeploy.cards.ModelCard` or YAML path (default: ``MODEL.card.yaml`` beside it).
    data: evaluation data in the same forms (labelled: top-1 accuracy); default: the held-out part
        of ``calib``, split by a fixed seed. Without labels, agreement with the FP32 model.
    task, like: a zoo task whose generated data and metric guard accuracy (zoo models: their own).
    goal: "speed" (the result must be faster than the best FP32 configuration on its engine) or
        "size" (it must be smaller).
    max_accuracy_drop: the most the metric may fall, in points (0..100 scale, absolute).
    prune, distill_steps, time_budget: structured pruning of that fraction of channels, then
        distillation from the original for at most ``distill_steps`` steps or ``time_budget`` seconds
        (:func:`edgedeploy.optimize.prune.prune_and_distill`).

    Returns the :class:`OptimizeReport`. Raises :class:`VerdictError` (nothing written) when no
    model is within budget, or the one within budget is not faster (smaller) than FP32.
    """
    import onnx

    from edgedeploy import engines, tasks, zoo
    from edgedeploy.ingest import load_model
    from edgedeploy.ingest.torch_export import resolve_source
    from edgedeploy.util import sha256_file

    say = progress or (lambda msg: None)
    if str(precision).lower() not in PRECISIONS:
        raise UserError(f"precision {precision!r}{did_you_mean(str(precision), PRECISIONS)}; choose one of "
                        f"{', '.join(PRECISIONS)}")
    precision = Precision(str(precision).lower())
    engine = parse(Engine, engine, what="engine")
    if goal not in GOALS:
        raise UserError(f"goal {goal!r}{did_you_mean(goal, GOALS)}; choose one of {', '.join(GOALS)}")
    if max_accuracy_drop is None or not max_accuracy_drop >= 0:
        raise UserError(f"max_accuracy_drop {max_accuracy_drop}: expected a number of points >= 0")
    calibration.check_method(calib_method)
    if prune:
        from edgedeploy.optimize.prune import check_ratio

        check_ratio(prune)
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"output {out} must end in .onnx (the optimised model is a portable ONNX file)")
    targets = _engines_for(engine, precision)
    if not targets:
        raise UserError("no engine that runs optimised ONNX models is installed: pip install onnxruntime")

    with tempfile.TemporaryDirectory(prefix=f"edgedeploy-opt-{os.getpid()}-") as work:
        work = Path(work)
        m, card_obj, exported = resolve_source(model, card=card, workdir=work, progress=say)
        m = load_model(m)
        entry = m.zoo or (zoo.entry(like) if like else None)
        if task is None and entry is not None:
            task = entry.task
        if task is not None:
            from edgedeploy.evaluation.runner import TASKS

            if task not in TASKS or len(TASKS[task].stages) != 1:
                single = [k for k, v in TASKS.items() if len(v.stages) == 1]
                raise UserError(f"task {task!r}{did_you_mean(task, single)}: optimize scores one model; "
                                f"choose one of {', '.join(single)}")
            if entry is None:
                entry = zoo.entry(TASKS[task].default)
        src = m.onnx_path()
        proto = onnx.load(str(src))
        if graph.float_weight_count(proto) == 0:
            raise UserError(f"{m.name} has no float weights (already quantized, or weights fed as inputs); "
                            "optimize needs the FP32 model")
        say("graph optimisation")
        g, grep = graph.optimize_graph(proto)
        g_path = work / "graph.onnx"
        onnx.save(g, str(g_path))
        del proto, g

        fp32 = engines.load(str(g_path), engine="onnxruntime", options=engines.EngineOptions(threads=threads))
        need_calib = precision in (Precision.INT8, Precision.AUTO)
        user_mode = entry is None and (calib is not None or data is not None)
        task_obj = None
        if user_mode:
            from edgedeploy.optimize import user_data

            calib_set, held = user_data.prepare(fp32, src, card_obj, calib=calib, data=data, calib_samples=calib_samples,
                                                eval_samples=eval_samples, method=calib_method,
                                                min_calib=min_calib_samples if need_calib else 1,
                                                need_calib=need_calib, say=say)
            feeds = calib_set.feeds
        else:
            task_obj = tasks.build(task, fp32, entry) if task and entry else None
            calib_set = calibration.build(fp32, calib=calib, task_obj=task_obj, task=task, n=calib_samples,
                                          method=calib_method, min_samples=min_calib_samples if need_calib else 1) \
                if (need_calib or calib is not None or task_obj is not None) else None
            feeds = calib_set.feeds if calib_set else [fp32.example_feeds(m.zoo.example_shape if m.zoo else None)]
            held = None
        parity = _parity(src, fp32, feeds[:4], threads)
        pruned = None
        if prune:
            from edgedeploy.optimize import prune as pruning

            data_feeds = calibration.build(fp32, calib=calib, task_obj=task_obj, task=task, n=distill_samples,
                                           min_samples=1).feeds if len(feeds) < distill_samples else feeds
            name = fp32.inputs[0].name
            say(f"pruning {prune:.0%} of channels, then distilling")
            pruned = pruning.prune_and_distill(g_path, g_path, [f[name] for f in data_feeds], ratio=prune,
                                               steps=distill_steps, threads=threads, say=say,
                                               time_budget_s=time_budget)
        if task:
            scorer = _TaskScorer(task, entry.name if entry else None, eval_samples, threads)
        else:
            from edgedeploy.optimize import guard, user_data

            held = held or user_data.random_held_out(fp32, m, eval_samples)
            scorer = guard.HeldOutScorer(held.feeds, ref_path=src, labels=held.labels, source=held.source,
                                         threads=threads, task=card_obj.task if card_obj else None, boxes=held.boxes)
        fp32.release()

        say(f"accuracy of the FP32 model ({scorer.metric})")
        before = {e: scorer(src, e) for e in targets}
        budget = max_accuracy_drop / 100.0

        made: dict[Candidate, tuple[Path, float]] = {}
        trials: list[EngineTrial] = []
        for e in targets:
            made[Candidate(Precision.FP32, e)] = (g_path, scorer(g_path, e))
        lost = {e: before[e] - made[Candidate(Precision.FP32, e)][1] for e in targets}
        if pruned and all(v > budget + 1e-12 for v in lost.values()):  # INT8 cannot win back what pruning lost
            figures = {"accuracy_before": {str(e): v for e, v in before.items()}, "metric": scorer.metric,
                       "pruned_fp32_accuracy": {str(e): made[Candidate(Precision.FP32, e)][1] for e in targets},
                       "prune": pruned.to_dict()}
            raise VerdictError(f"pruning {prune:.0%} of channels loses {100 * min(lost.values()):.2f} points of "
                               f"{scorer.metric} at FP32 already (budget {max_accuracy_drop:g}); prune less, "
                               "or distil longer (distill_steps) or on more data", figures=figures)
        if precision is Precision.FP16:
            from edgedeploy.optimize import fp16

            say("FP16 conversion")
            h = work / "fp16.onnx"
            fp16.convert(g_path, h)
            for e in targets:
                made[Candidate(Precision.FP16, e)] = (h, scorer(h, e))
        if precision in (Precision.INT8, Precision.AUTO):
            for e in targets:
                trial = int8_trial(e, g_path, work, calib_set, scorer, before[e], budget, max_float_share, say,
                                   threads=threads)
                trials.append(trial)
                if trial.within_budget:
                    made[Candidate(Precision.INT8, e)] = (work / f"int8-{e}.onnx", trial.accuracy)

        allowed = {c: v for c, v in made.items() if before[c.engine] - v[1] <= budget + 1e-12}
        wanted = Precision.FP32 if precision is Precision.FP32 else precision
        choices = {c: v for c, v in allowed.items() if precision is Precision.AUTO or c.precision is wanted}
        figures = {"accuracy_before": {str(e): v for e, v in before.items()}, "max_accuracy_drop_points": max_accuracy_drop,
                   "candidates": {c.label: acc for c, (_, acc) in made.items()},
                   "trials": [t.__dict__ for t in trials], "metric": scorer.metric}
        if not choices:
            fallbacks = {c.label: (c.engine, acc) for c, (_, acc) in made.items()
                         if c.precision is not Precision.INT8 and precision is not Precision.INT8}
            raise VerdictError(over_budget_message(precision, trials, fallbacks, before, scorer.metric,
                                                   max_accuracy_drop), figures=figures)

        say("latency")
        plan = latency.plan_for
        lat_cands = {"ORT default FP32 (anchor)": plan(src, "onnxruntime", anchor=True)}
        if engines.available("openvino"):  # OpenVINO as users open it (BF16 where the CPU has it)
            lat_cands["OpenVINO default (anchor)"] = plan(src, "openvino", anchor=True)
        lat_cands |= {Candidate(Precision.FP32, e, graph=False).label: plan(src, e, threads=threads) for e in targets}
        lat_cands |= {c.label: plan(p, c.engine, threads=threads, precision=c.precision) for c, (p, _) in allowed.items()}
        x = feeds[0][next(iter(feeds[0]))]
        lat = latency.measure(lat_cands, x, rounds=latency_rounds, progress=say)
        ms = {label: v.median_ms for label, v in lat.items()}
        if goal == "size":
            best = min(choices, key=lambda c: (choices[c][0].stat().st_size, ms[c.label]))
        else:
            best = min(choices, key=lambda c: ms[c.label])
        path, acc = allowed[best]
        baseline = _fp32_baseline(best.engine, lat_cands, ms)
        size_before = m.size_bytes()
        verdict = _never_worse(best, goal, ms, baseline, path.stat().st_size, size_before) or \
            _behind_anchor(best, goal, lat, [k for k, p in lat_cands.items() if p.untuned and p.engine in targets])
        if verdict:
            figures["latency_ms"] = {k: round(v, 3) for k, v in ms.items()}
            figures["size_before"], figures["size_after"] = size_before, path.stat().st_size
            raise VerdictError(verdict + f"; nothing was written (latency: {latency.method(threads=threads, rounds=latency_rounds)})",
                               figures=figures)
        trial = next((t for t in trials if best.precision is Precision.INT8 and t.engine == best.engine), None)
        sc = scorer.score(path, best.engine)
        notes = list(held.notes) if held else []
        if sc is not None and sc.half_width * 100 > max_accuracy_drop / 2:
            notes.append(f"the guard's own 95% interval is ±{100 * sc.half_width:.2f} points on {sc.n} held-out samples, "
                         f"more than half the {max_accuracy_drop:g}-point budget: give more evaluation data")
        report = OptimizeReport(
            model=m.name, output=str(out), engine=str(best.engine), precision=str(best.precision),
            recipe=RECIPES[best.engine].name if trial else str(best.precision),
            metric=scorer.metric, metric_source=scorer.source,
            accuracy_before=before[best.engine], accuracy_after=acc,
            accuracy_drop_points=100 * (before[best.engine] - acc), max_accuracy_drop_points=max_accuracy_drop,
            accuracy_ci_points=None if sc is None else round(100 * sc.half_width, 3),
            size_before=size_before, size_after=path.stat().st_size,
            passes=grep.passes + ([pruned.describe()] if pruned else [])
            + ([f"INT8: {RECIPES[best.engine].description}"] if trial else [])
            + (["FP16: weights and arithmetic, float32 inputs/outputs"] if best.precision is Precision.FP16 else []),
            nodes_before=grep.nodes_before, nodes_after=grep.nodes_after, graph_parity_max_abs_diff=parity,
            calibration=calib_set.source if calib_set and best.precision is Precision.INT8 else "-",
            latency_ms={k: v.to_dict() for k, v in lat.items()},
            latency_method=latency.method(threads=threads, rounds=latency_rounds),
            latency_before_label="ORT default FP32 (anchor)", latency_after_label=best.label,
            fp32_baseline_label=baseline, goal=goal, source=str(source_path(out) if exported else m.path.resolve()),
            source_sha256=sha256_file(exported or m.path),
            float_layers=trial.float_layers if trial else [], trials=trials, notes=notes,
            accuracy_before_by_engine={str(e): v for e, v in before.items()},
            candidate_accuracy={c.label: a for c, (_, a) in made.items()},
        )
        _write(path, out, report, exported)
        scored = {c.label: v for c, v in made.items()}  # the FP32 model as is: the accuracy measured before
        scored |= {k: (Path(p.model.path), before[p.engine]) for k, p in lat_cands.items()
                   if k not in scored and p.engine in before and not (p.untuned and p.engine is not Engine.ONNXRUNTIME)}
        _pareto(out, best, lat, lat_cands, scored, latency_rounds, threads)
    return report


def _pareto(out: Path, best: Candidate, lat: dict, lat_cands: dict, made: dict, rounds: int, threads: int) -> None:
    """Every candidate timed (latency vs accuracy, marker ~ model file size) beside the output:
    ``OUT.pareto.png`` and ``OUT.report.html``."""
    from edgedeploy.benchmarking import pareto

    points = []
    for label, plan in lat_cands.items():
        path, acc = made.get(label, (Path(plan.model.path), None))
        points.append(pareto.Point(label=label, latency_ms=lat[label].median_ms, accuracy=acc,
                                   memory_mb=Path(path).stat().st_size / 2**20, anchor=plan.untuned,
                                   chosen=label == best.label, interval=lat[label].interval,
                                   note="the engine's defaults" if plan.untuned else ""))
    rule = ("the fastest candidate within the accuracy budget, handed back only when it is faster than the best "
            "FP32 configuration on its engine and, beyond the noise band (its 95% interval entirely below), than the "
            "untuned engines (edgedeploy.engines.timing.clears_noise)")
    pareto.write(points, Path(out).with_suffix(""), title=f"optimize {Path(out).name}: every candidate",
                 rule=rule, method=latency.method(threads=threads, rounds=rounds), size_label="model file (MiB)")


def _fp32_baseline(engine: Engine, lat_cands: dict, ms: dict[str, float]) -> str:
    """The fastest FP32 configuration measured on ``engine`` (original, graph-optimised, or as users open it)."""
    fp32 = [label for label, p in lat_cands.items() if p.engine == engine and (p.untuned or label.startswith("fp32"))]
    return min(fp32, key=ms.get)


def _never_worse(best: Candidate, goal: str, ms: dict[str, float], baseline: str, size_after: int,
                 size_before: int) -> str:
    """Why ``best`` must not be handed back ('' when it may): not faster (or, for size, not smaller) than FP32."""
    if goal == "size":
        if size_after >= size_before:
            return f"{best.label} is {size_after / 1e6:.2f} MB, not smaller than the FP32 model ({size_before / 1e6:.2f} MB)"
        return ""
    if best.precision is Precision.FP32 and best.graph:
        return ""  # the FP32 graph itself: never slower than FP32 by more than noise, and exactly as accurate
    if ms[best.label] >= ms[baseline]:
        return (f"{best.label} runs at {ms[best.label]:.2f} ms, not faster than the best FP32 configuration on "
                f"{best.engine} ({baseline}: {ms[baseline]:.2f} ms; {ms[baseline] / ms[best.label]:.2f}x) — use "
                "goal size for a smaller model, or another engine")
    return ""


def _behind_anchor(best: Candidate, goal: str, lat: dict, anchors: list[str]) -> str:
    """Why ``best`` must not be handed back ('' when it may): its latency does not clear the noise band of the
    fastest untuned engine among the targets (the same FP32 model opened with the engine's defaults)."""
    if goal == "size" or not anchors or (best.precision is Precision.FP32 and best.graph):
        return ""
    from edgedeploy.engines.timing import clears_noise

    a = min(anchors, key=lambda k: lat[k].median_ms)
    mine, theirs = lat[best.label], lat[a]
    if clears_noise(mine.interval, theirs.interval):
        return ""
    return (f"{best.label} runs at {mine.median_ms:.2f} ms (95% interval {mine.interval[0]:.2f}-{mine.interval[1]:.2f}), "
            f"not faster beyond the noise band than the best untuned engine, {a}: {theirs.median_ms:.2f} ms "
            f"({theirs.interval[0]:.2f}-{theirs.interval[1]:.2f}) — run the FP32 model on it as it is (edgedeploy deploy "
            "considers it too), or use goal size for a smaller model")


def _parity(src: Path, g_session, feeds: list[dict], threads: int) -> float:
    """Largest output difference between the original and the graph-optimised model on real inputs."""
    from edgedeploy import engines
    from edgedeploy.engines import EngineOptions

    with engines.load(str(src), engine="onnxruntime", options=EngineOptions(threads=threads)) as s:
        return max(graph.max_abs_diff(s.run(f), g_session.run(f)) for f in feeds)


def _write(path: Path, out: Path, report: OptimizeReport, exported: Path | None = None) -> None:
    """Model and report (and a PyTorch model's FP32 export, ``OUT.fp32.onnx``), each written atomically."""
    from edgedeploy.util import atomic_write

    if exported is not None:
        with atomic_write(source_path(out)) as f, open(exported, "rb") as src:
            shutil.copyfileobj(src, f)
    with atomic_write(out) as f, open(path, "rb") as src:
        shutil.copyfileobj(src, f)
    with atomic_write(report_path(out), "w") as f:
        f.write(report.to_json())


def report_path(out: str | Path) -> Path:
    """Where the report of the model written to ``out`` goes: ``x.onnx`` → ``x.report.json``."""
    return Path(out).with_suffix(".report.json")


def source_path(out: str | Path) -> Path:
    """Where a PyTorch model's FP32 ONNX export goes beside the optimised ``out``: ``x.onnx`` → ``x.fp32.onnx``."""
    return Path(out).with_suffix(".fp32.onnx")
