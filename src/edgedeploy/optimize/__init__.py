"""Model optimisation that pays: graph passes, INT8/FP16 per engine, guarded by accuracy, measured.

>>> from edgedeploy.optimize import optimize
>>> r = optimize("pplcnet-orientation", "lcnet.int8.onnx", engine="auto", max_accuracy_drop=0.5)
>>> r.size_ratio, r.accuracy_drop_points, r.engine, r.speedup

Flow: graph optimisation (:mod:`.graph`) → calibration data (:mod:`.calibration`) → for each
target engine its own INT8 recipe (:data:`RECIPES`: ORT's quantizer for ONNX Runtime, NNCF for
OpenVINO) → accuracy on the task (or output fidelity) → if over budget, layers back to float by
measured sensitivity (:mod:`.sensitivity`) → latency of every candidate, interleaved
(:mod:`.latency`) → the fastest within budget is written, atomically, with a report beside it
(``OUT`` → ``OUT.report.json``). A model over budget is never written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.optimize import calibration, graph, latency, sensitivity
from edgedeploy.optimize.report import EngineTrial, OptimizeReport

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "RECIPES", "EngineTrial", "OptimizeReport", "optimize", "report_path"]

PRECISIONS = ("int8", "fp16", "fp32", "auto")
EVAL_SEED = 1000  # accuracy data, disjoint from calibration data (calibration.CALIB_SEED)
MAX_FLOAT_SHARE = 0.5  # beyond half the layers in float, INT8 no longer pays: stop and say so
DEFAULT_MAX_DROP = 1.0  # percentage points: the seed's "<1% accuracy loss"
DISTILL_STEPS = 600
DISTILL_SAMPLES = 48


@dataclass(frozen=True)
class Recipe:
    """How INT8 is made for one engine: ``quantize(float_path, out_path, calib, exclude)``."""

    name: str
    description: str
    quantize: Callable


def _ort_qdq(src, out, calib, exclude, work):
    from edgedeploy.optimize import quantize_ort

    quantize_ort.quantize_static(src, out, calib, fmt="qdq", exclude=exclude, cache=Path(work) / "ort-ranges.json")


def _nncf(src, out, calib, exclude, work):
    from edgedeploy.optimize import quantize_openvino

    quantize_openvino.quantize(src, out, calib, exclude=exclude)


# Engines that run an INT8 ONNX model, and the recipe that makes INT8 fast on each (measured:
# benchmarks/compression_table.py). Paddle Inference runs Paddle-format models only.
RECIPES: dict[str, Recipe] = {
    "onnxruntime": Recipe("ort-static-qdq-u8s8", "ONNX Runtime quantize_static: QDQ, U8 activations, S8 per-channel "
                          "weights, all ops with INT8 kernels", _ort_qdq),
    "openvino": Recipe("nncf-qdq", "NNCF post-training INT8 (OpenVINO placement, fast bias correction), QDQ ONNX",
                       _nncf),
}


def _engines_for(engine: str, precision: str) -> list[str]:
    from edgedeploy import engines

    if engine == "auto":
        found = [e for e in RECIPES if engines.available(e)]
        return found
    engines.spec(engine)
    if engine not in RECIPES:
        raise UserError(f"--engine {engine} cannot run an optimised ONNX model ({precision}): it runs "
                        f"{'/'.join(engines.spec(engine).formats)} models only; use --engine "
                        f"{' or '.join(RECIPES)} (or auto)")
    if not engines.available(engine):
        raise UserError(f"engine {engine!r} is not installed: {engines.spec(engine).install}")
    return [engine]


class _Scorer:
    """Accuracy of a model file on an engine: the task metric, or output fidelity without a task."""

    def __init__(self, task: str | None, like: str | None, ref_path: Path, feeds: list[dict], n: int | None,
                 threads: int):
        self.task, self.like, self.n, self.threads = task, like, n, threads
        self.feeds = feeds
        if task:
            from edgedeploy.evaluation.runner import TASKS

            spec = TASKS[task]
            self.metric = spec.metric
            self.source = f"{spec.metric} on {n or spec.n} generated {spec.dataset} (seed {EVAL_SEED})"
        else:
            self.ref = self._outputs(ref_path, "onnxruntime")
            rank2 = all(v.ndim == 2 for v in self.ref[0].values())
            self.metric = "top-1 agreement" if rank2 else "output fidelity (1 - relative L2 error)"
            self.source = (f"{self.metric} with the FP32 model's outputs on {len(feeds)} calibration samples "
                           "(no task labels)")
        self._cache: dict[tuple[str, str], float] = {}

    def _session(self, path: Path, engine: str):
        from edgedeploy import engines
        from edgedeploy.engines import EngineOptions

        return engines.load(str(path), engine=engine, options=EngineOptions(threads=self.threads))

    def _outputs(self, path: Path, engine: str) -> list[dict]:
        with self._session(path, engine) as s:
            return [s.run(f) for f in self.feeds]

    def __call__(self, path: Path, engine: str) -> float:
        key = (str(path), engine)
        if key not in self._cache:
            self._cache[key] = self._score(path, engine)
        return self._cache[key]

    def _score(self, path: Path, engine: str) -> float:
        if self.task:
            from edgedeploy.evaluation.runner import evaluate

            with self._session(path, engine) as s:
                return evaluate(s, self.task, n=self.n, seed=EVAL_SEED, like=self.like).value
        outs = self._outputs(path, engine)
        if self.metric == "top-1 agreement":
            hits = [np.argmax(o[k], -1) == np.argmax(r[k], -1) for o, r in zip(outs, self.ref) for k in r]
            return float(np.mean(np.concatenate([h.ravel() for h in hits])))
        errs = [np.linalg.norm(o[k] - r[k]) / max(np.linalg.norm(r[k]), 1e-12) for o, r in zip(outs, self.ref) for k in r]
        return float(max(0.0, 1.0 - np.mean(errs)))


def optimize(model, out: str | Path, *, engine: str = "auto", precision: str = "int8", calib=None,
             calib_method: str = "default", calib_samples: int | None = None, task: str | None = None,
             like: str | None = None, max_accuracy_drop: float = DEFAULT_MAX_DROP, eval_samples: int | None = None,
             threads: int = 2, latency_rounds: int = 5, max_float_share: float = MAX_FLOAT_SHARE,
             min_calib_samples: int = calibration.MIN_SAMPLES, prune: float = 0.0,
             distill_steps: int = DISTILL_STEPS, distill_samples: int = DISTILL_SAMPLES,
             progress: Callable[[str], None] | None = None) -> OptimizeReport:
    """Optimise ``model`` (zoo name, .onnx or Paddle model) for ``engine`` and write it to ``out`` (.onnx).

    precision: "int8" (static INT8, calibrated), "fp16" (for GPU targets), "fp32" (graph passes
        only) or "auto" (INT8 if it is within budget and faster than FP32 on the engine, else FP32).
    engine: "onnxruntime", "openvino" or "auto" (each engine's INT8 is made and measured; the
        fastest within budget wins).
    calib: calibration data (see :mod:`edgedeploy.optimize.calibration`); default: the task's data.
    task: the task whose metric guards accuracy (default: the zoo model's own); without one,
        output fidelity against the FP32 model (top-1 agreement for classifiers).
    like: the zoo model whose preprocessing/labels a plain file shares (e.g. a fine-tuned copy).
    max_accuracy_drop: the most the metric may fall, in percentage points (absolute).
    threads: threads for the latency measurements and accuracy runs.
    prune: fraction of channels to remove before quantizing (0: none); the pruned model is
        distilled from the original for ``distill_steps`` steps on ``distill_samples`` inputs
        from ``calib`` (see :mod:`edgedeploy.optimize.prune`), and the accuracy budget is
        measured against the original model.

    Returns the :class:`OptimizeReport`; raises :class:`UserError` when the budget cannot be met
    (saying the best reached) — nothing is written then.
    """
    import onnx

    from edgedeploy import engines, tasks, zoo
    from edgedeploy.ingest import load_model

    say = progress or (lambda msg: None)
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}{did_you_mean(precision, PRECISIONS)}; choose one of {', '.join(PRECISIONS)}")
    if max_accuracy_drop is None or not max_accuracy_drop >= 0:
        raise UserError(f"--max-accuracy-drop {max_accuracy_drop}: expected a number of percentage points >= 0")
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

    m = load_model(model)
    entry = m.zoo or (zoo.entry(like) if like else None)
    if task is None and entry is not None:
        task = entry.task
    if task is not None:
        from edgedeploy.evaluation.runner import TASKS

        if task not in TASKS or len(TASKS[task].stages) != 1:
            single = [k for k, v in TASKS.items() if len(v.stages) == 1]
            raise UserError(f"--task {task!r}{did_you_mean(task, single)}: optimize scores one model; "
                            f"choose one of {', '.join(single)}")
        if entry is None:
            entry = zoo.entry(TASKS[task].default)
    like_name = entry.name if entry else None
    src = m.onnx_path()
    proto = onnx.load(str(src))
    if graph.float_weight_count(proto) == 0:
        raise UserError(f"{m.name} has no float weights (already quantized, or weights fed as inputs); "
                        "optimize needs the FP32 model")

    with tempfile.TemporaryDirectory(prefix=f"edgedeploy-opt-{os.getpid()}-") as work:
        work = Path(work)
        say("graph optimisation")
        g, grep = graph.optimize_graph(proto)
        g_path = work / "graph.onnx"
        onnx.save(g, str(g_path))
        del proto, g

        fp32 = engines.load(str(g_path), engine="onnxruntime", options=engines.EngineOptions(threads=threads))
        task_obj = tasks.build(task, fp32, entry) if task and entry else None
        need_calib = precision in ("int8", "auto")
        calib_set = calibration.build(fp32, calib=calib, task_obj=task_obj, task=task, n=calib_samples,
                                      method=calib_method, min_samples=min_calib_samples if need_calib else 1) \
            if (need_calib or calib is not None or task_obj is not None) else None
        feeds = calib_set.feeds if calib_set else [fp32.example_feeds(m.zoo.example_shape if m.zoo else None)]
        parity = _parity(src, fp32, feeds[:4], threads)
        pruned = None
        if prune:
            from edgedeploy.optimize import prune as pruning

            data = calibration.build(fp32, calib=calib, task_obj=task_obj, task=task, n=distill_samples,
                                     min_samples=1).feeds if len(feeds) < distill_samples else feeds
            name = fp32.inputs[0].name
            say(f"pruning {prune:.0%} of channels, then distilling")
            # the same graph with fewer channels replaces the graph-optimised model
            pruned = pruning.prune_and_distill(g_path, g_path, [f[name] for f in data], ratio=prune,
                                               steps=distill_steps, threads=threads)
        fp32.release()

        scorer = _Scorer(task, like_name, src, feeds[:16], eval_samples, threads)
        say(f"accuracy of the FP32 model ({scorer.metric})")
        before = {e: scorer(src, e) for e in targets}
        budget = max_accuracy_drop / 100.0

        candidates: dict[str, tuple[Path, str, float]] = {}  # label -> (file, engine, accuracy)
        trials: list[EngineTrial] = []
        for e in targets:
            candidates[f"fp32-graph on {e}"] = (g_path, e, scorer(g_path, e))
        if precision == "fp16":
            from edgedeploy.optimize import fp16

            say("FP16 conversion")
            h = work / "fp16.onnx"
            fp16.convert(g_path, h)
            for e in targets:
                candidates[f"fp16 on {e}"] = (h, e, scorer(h, e))
        if precision in ("int8", "auto"):
            for e in targets:
                trial = _int8_trial(e, g_path, work, calib_set, scorer, before[e], budget, max_float_share, say)
                trials.append(trial)
                if trial.within_budget:
                    candidates[f"int8 on {e}"] = (work / f"int8-{e}.onnx", e, trial.accuracy)

        allowed = {k: v for k, v in candidates.items() if before[v[1]] - v[2] <= budget + 1e-12}
        wanted = {"int8": "int8", "fp16": "fp16", "fp32": "fp32-graph", "auto": ""}[precision]
        choices = {k: v for k, v in allowed.items() if k.startswith(wanted)}
        if not choices:
            raise UserError(_over_budget(precision, trials, candidates, before, scorer.metric, max_accuracy_drop))

        say("latency")
        plan = latency.plan_for
        lat_plans = {"ORT default FP32 (anchor)": plan(src, "onnxruntime", anchor=True)}
        if engines.available("openvino"):  # OpenVINO as users open it (BF16 where the CPU has it)
            lat_plans["OpenVINO default (anchor)"] = plan(src, "openvino", anchor=True)
        lat_plans |= {f"fp32 on {e}": plan(src, e, threads=threads) for e in targets}
        lat_plans |= {k: plan(p, e, threads=threads) for k, (p, e, _) in allowed.items()}
        x = feeds[0][next(iter(feeds[0]))]
        lat = latency.measure(lat_plans, x, rounds=latency_rounds, progress=say)
        best = min(choices, key=lambda k: lat[k].median_ms)  # with --precision auto: INT8, FP16 or FP32
        notes: list[str] = []
        path, chosen_engine, acc = allowed[best]
        fp32_same = lat[f"fp32 on {chosen_engine}"].median_ms
        if lat[best].median_ms > fp32_same:
            notes.append(f"WARNING: {best} ({lat[best].median_ms:.2f} ms) is slower than the FP32 model on "
                         f"{chosen_engine} ({fp32_same:.2f} ms); --precision auto hands back the faster one")
        untuned = {k: v.median_ms for k, v in lat.items() if k.endswith("(anchor)")}
        fastest_untuned = min(untuned, key=untuned.get)
        if lat[best].median_ms > untuned[fastest_untuned]:
            notes.append(f"WARNING: {best} ({lat[best].median_ms:.2f} ms) is slower than {fastest_untuned} "
                         f"({untuned[fastest_untuned]:.2f} ms)")
        trial = next((t for t in trials if f"int8 on {t.engine}" == best), None)
        report = OptimizeReport(
            model=m.name, output=str(out), engine=chosen_engine, precision=best.split(" on ")[0],
            recipe=RECIPES[chosen_engine].name if best.startswith("int8") else best.split(" on ")[0],
            metric=scorer.metric, metric_source=scorer.source,
            accuracy_before=before[chosen_engine], accuracy_after=acc,
            accuracy_drop_points=100 * (before[chosen_engine] - acc), max_accuracy_drop_points=max_accuracy_drop,
            size_before=m.size_bytes(), size_after=path.stat().st_size,
            passes=grep.passes + ([pruned.describe()] if pruned else [])
            + ([f"INT8: {RECIPES[chosen_engine].description}"] if trial else [])
            + (["FP16: weights and arithmetic, float32 inputs/outputs"] if best.startswith("fp16") else []),
            nodes_before=grep.nodes_before, nodes_after=grep.nodes_after, graph_parity_max_abs_diff=parity,
            calibration=calib_set.source if calib_set and best.startswith("int8") else "-",
            latency_ms={k: v.to_dict() for k, v in lat.items()},
            latency_method=latency.method(threads=threads, rounds=latency_rounds),
            latency_before_label="ORT default FP32 (anchor)", latency_after_label=best,
            float_layers=trial.float_layers if trial else [], trials=trials, notes=notes,
            accuracy_before_by_engine=dict(before),
            candidate_accuracy={k: acc for k, (_, _, acc) in candidates.items()},
        )
        _write(path, out, report)
    return report


def _parity(src: Path, g_session, feeds: list[dict], threads: int) -> float:
    """Largest output difference between the original and the graph-optimised model on real inputs."""
    from edgedeploy import engines
    from edgedeploy.engines import EngineOptions

    with engines.load(str(src), engine="onnxruntime", options=EngineOptions(threads=threads)) as s:
        return max(graph.max_abs_diff(s.run(f), g_session.run(f)) for f in feeds)


def _engine_parity(path: Path, engine: str, feeds: list[dict], threads: int) -> float:
    """Output SQNR in dB (worst output) of ``path`` on ``engine`` against ONNX Runtime on the same file."""
    from edgedeploy import engines
    from edgedeploy.engines import EngineOptions

    opts = EngineOptions(threads=threads)
    with engines.load(str(path), engine="onnxruntime", options=opts) as ref, \
            engines.load(str(path), engine=engine, options=opts) as other:
        pairs = [(ref.run(f), other.run(f)) for f in feeds]
    return min(sensitivity.sqnr_db(sum(float(np.sum((b[k].astype(np.float64) - a[k]) ** 2)) for a, b in pairs)
                                   / max(sum(float(np.sum(a[k].astype(np.float64) ** 2)) for a, _ in pairs), 1e-30))
               for k in pairs[0][0])


def _int8_trial(engine: str, g_path: Path, work: Path, calib_set, scorer, before: float, budget: float,
                max_float_share: float, say) -> EngineTrial:
    """INT8 for ``engine``; if over budget, keep the most sensitive layers in float, greedily."""
    recipe = RECIPES[engine]
    trial = EngineTrial(engine, recipe.name)
    out = work / f"int8-{engine}.onnx"
    step_path = work / f"int8-{engine}-step.onnx"
    say(f"INT8 for {engine} ({recipe.name})")
    try:
        recipe.quantize(g_path, out, calib_set, [], work)
    except UserError as exc:
        trial.error = str(exc)
        return trial
    if engine != "onnxruntime":
        trial.engine_parity_db = _engine_parity(out, engine, calib_set.feeds[:4], scorer.threads)
    acc = scorer(out, engine)
    trial.steps.append({"float_layers": 0, "accuracy": acc})
    trial.accuracy, trial.size_bytes = acc, out.stat().st_size
    if before - acc <= budget + 1e-12:
        trial.within_budget = True
        return trial
    say(f"{engine}: INT8 drops {100 * (before - acc):.2f} points; measuring per-layer error")
    ranked = sensitivity.rank(sensitivity.layer_errors(g_path, out, calib_set.feeds))
    best_path = work / f"int8-{engine}-best.onnx"
    shutil.copyfile(out, best_path)
    for k in sensitivity.float_counts(len(ranked), max_float_share):
        keep = ranked[:k]
        say(f"{engine}: {k} layer(s) in float")
        recipe.quantize(g_path, step_path, calib_set, [e.name for e in keep], work)
        acc_k = scorer(step_path, engine)
        trial.steps.append({"float_layers": k, "accuracy": acc_k})
        if acc_k > trial.accuracy:
            trial.accuracy = acc_k
            os.replace(step_path, best_path)
            trial.float_layers = [{**e.to_dict(), "reason": f"largest own error contribution #{i + 1} "
                                   f"(output SQNR {e.sqnr_db:.1f} dB)"} for i, e in enumerate(keep)]
        if before - acc_k <= budget + 1e-12:
            trial.within_budget = True
            break
    os.replace(best_path, out)
    trial.size_bytes = out.stat().st_size
    return trial


def _over_budget(precision, trials, candidates, before, metric, max_drop) -> str:
    parts = []
    for t in trials:
        if t.error:
            parts.append(f"{t.engine}: {t.error}")
        elif t.accuracy is not None:
            drop = 100 * (before[t.engine] - t.accuracy)
            parity = "" if t.engine_parity_db is None else (
                f"; its INT8 outputs are {t.engine_parity_db:.1f} dB SQNR from ONNX Runtime's on the same file")
            parts.append(f"{t.engine}: best {100 * t.accuracy:.2f} ({drop:.2f} points down) with "
                         f"{len(t.float_layers)} layer(s) kept in float{parity}")
    for k, (_, e, acc) in candidates.items():
        if not k.startswith("int8") and (precision != "int8"):
            parts.append(f"{k}: {100 * acc:.2f} ({100 * (before[e] - acc):.2f} points down)")
    return (f"no {precision} model meets --max-accuracy-drop {max_drop:g} points on {metric} (FP32: "
            + ", ".join(f"{100 * v:.2f} on {e}" for e, v in before.items()) + "); best reached — "
            + "; ".join(parts) + "; nothing was written. Raise the budget, give more or better calibration data, "
            "or use --precision fp32")


def _write(path: Path, out: Path, report: OptimizeReport) -> None:
    """Model and report, each written to a temporary file beside the target and renamed into place."""
    from edgedeploy.util import atomic_write

    with atomic_write(out) as f, open(path, "rb") as src:
        shutil.copyfileobj(src, f)
    with atomic_write(report_path(out), "w") as f:
        f.write(report.to_json())


def report_path(out: str | Path) -> Path:
    """Where the report of the model written to ``out`` goes: ``x.onnx`` → ``x.report.json``."""
    out = Path(out)
    return out.with_suffix(".report.json")

