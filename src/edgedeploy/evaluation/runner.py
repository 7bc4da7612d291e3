"""Accuracy of a model (or an OCR system) on a real task, measured on generated or saved data.

>>> from edgedeploy.evaluation.runner import evaluate
>>> r = evaluate("ppocrv6-det", "det", engine="openvino")       # 20 generated pages
>>> r.metric, r.value                                          # ("hmean", 1.0)
>>> evaluate("ppocrv6", "ocr", det_model=quantized_session)    # one stage swapped

The optimiser, the tuner, the benchmark and the model server call :func:`evaluate`;
``edgedeploy eval`` is its command line. One table, :data:`~edgedeploy.evaluation.registry.TASKS`,
says per task what it runs, on which data, how it is scored and which number is the headline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgedeploy import datasets, engines, tasks, zoo
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.evaluation.registry import SYSTEMS, TASKS, TaskSpec, spec as _spec
from edgedeploy.evaluation.scoring import score_ocr
from edgedeploy.ingest import load_model
from edgedeploy.tasks.common import Timings
from edgedeploy.zoo import BY_NAME, ZooEntry

__all__ = ["EvalResult", "Progress", "SYSTEMS", "TASKS", "TaskSpec", "evaluate", "score_ocr"]

Progress = Callable[[int, int], None]  # (samples done, samples in all)


@dataclass(frozen=True)
class EvalResult:
    """One evaluation. ``value`` is the headline ``metric`` in [0, 1] (higher is better);
    ``details`` holds every metric of the task; ``timings`` the mean milliseconds per sample
    of each stage (preprocess / model / postprocess / total); ``seconds`` the wall time of the
    inference loop, ``setup_seconds`` that of loading models and data."""

    task: str
    model: str
    engine: str
    metric: str
    value: float
    details: dict
    n: int
    data: str
    seconds: float
    setup_seconds: float
    timings: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def evaluate(model, task: str | None = None, *, engine: str = "auto", options=None,
             data: str | Path | Sequence | None = None, n: int | None = None, seed: int = 0,
             progress: Progress | None = None, like: str | ZooEntry | None = None,
             det_model=None, cls_model=None, rec_model=None) -> EvalResult:
    """Measure ``model`` on ``task`` (a key of :data:`TASKS`; None: the zoo model's own task).

    model: a zoo name, a path, an :class:`~edgedeploy.ingest.Model`, or an open Session (an
        in-memory candidate); for "ocr"/"container" a system name of :data:`SYSTEMS`
        ("ocr" = "ppocrv6"), whose stages ``det_model``/``cls_model``/``rec_model`` replace.
    like: the zoo model whose pre/post-processing, labels and dictionary the model shares
        (a name or a ZooEntry, e.g. with other mean/std); default: the model's own zoo entry,
        else the task's zoo model (a quantized ppocrv6-det file is "like" ppocrv6-det).
    data: a folder written by :func:`edgedeploy.datasets.save`, a list of samples, or None
        to generate ``n`` samples (default per task, a few seconds on 2 cores) from ``seed``.
    engine/options: where models given by name or path run ("auto": the format's native engine).
    progress: called as ``progress(done, total)`` after each batch of samples.

    Raises :class:`UserError` for an unknown task or data set, data that does not fit the
    task, or a model whose outputs the task cannot decode.
    """
    t0 = time.perf_counter()
    spec = _spec(task or _own_task(model))
    samples, data_desc = _data(spec, data, n, seed)
    overrides = {"det": det_model, "cls": cls_model, "rec": rec_model}
    stages, opened = _open_stages(spec, model, like, engine, options, overrides)
    try:
        run = spec.run(stages)
        setup = time.perf_counter() - t0
        preds, timings = [], {}
        t1 = time.perf_counter()
        for start in range(0, len(samples), spec.batch):
            chunk = samples[start:start + spec.batch]
            out, stage_times = run([s.image for s in chunk])
            preds.extend(out)
            for name, t in stage_times.items():
                timings[name] = timings.get(name, Timings()) + t
            if progress:
                progress(min(start + spec.batch, len(samples)), len(samples))
        seconds = time.perf_counter() - t1
    finally:
        for session in opened:
            session.release()
    value, details = spec.score(preds, samples)
    per_sample = {name: {"preprocess_ms": t.preprocess_ms / max(len(samples), 1),
                         "model_ms": t.model_ms / max(len(samples), 1),
                         "postprocess_ms": t.postprocess_ms / max(len(samples), 1),
                         "total_ms": t.total_ms / max(len(samples), 1)} for name, t in timings.items()}
    return EvalResult(task=spec.name, model=_model_name(model, spec, stages),
                      engine="+".join(sorted({s.engine for s in stages.values()})), metric=spec.metric,
                      value=float(value), details=details, n=len(samples), data=data_desc, seconds=seconds,
                      setup_seconds=setup, timings=per_sample)


# --- what to run ------------------------------------------------------------------------------

@dataclass
class _Stage:
    task_obj: object
    name: str
    engine: str


def _own_task(model) -> str:
    name = model if isinstance(model, str) else getattr(getattr(model, "zoo", None), "name", None)
    if name in SYSTEMS:
        return "ocr"
    if name in BY_NAME:
        return BY_NAME[name].task
    raise UserError(f"cannot tell which task to evaluate {_describe(model)} on; give one of {', '.join(TASKS)}")


def _open_stages(spec: TaskSpec, model, like, engine, options, overrides) -> tuple[dict[str, _Stage], list]:
    """The task object of every stage, and the sessions opened here (to release afterwards)."""
    if len(spec.stages) == 1:
        given = {spec.stages[0]: (model, like or _zoo_name(model) or spec.default)}
    else:
        if not isinstance(model, str) or model not in SYSTEMS:
            raise UserError(f"task {spec.name!r} runs a system of models, so the model must be one of "
                            f"{', '.join(SYSTEMS)}, not {_describe(model)}"
                            f"{did_you_mean(str(model), SYSTEMS) if isinstance(model, str) else ''}; "
                            "replace one stage with det_model=/cls_model=/rec_model=")
        system = SYSTEMS[model]
        given = {stage: (overrides.get(stage) or system[stage], system[stage]) for stage in spec.stages}
    stages, opened = {}, []
    try:
        for stage, (source, ref) in given.items():
            stages[stage] = _open(stage, source, ref, engine, options, opened)
    except BaseException:
        for session in opened:
            session.release()
        raise
    return stages, opened


def _open(stage: str, source, like: str | ZooEntry, engine: str, options, opened: list) -> _Stage:
    entry = like if isinstance(like, ZooEntry) else zoo.entry(like)
    if _is_session(source):
        session, name = source, f"{getattr(source, 'engine', 'session')} session like {entry.name}"
    else:
        m = load_model(source)
        session = engines.load(m, engine=engine, options=options)
        opened.append(session)
        name = m.name
    # rec needs the dictionary file, which lives with the fetched zoo model.
    ref = zoo.fetch(entry.name) if stage == "rec" else entry
    if stage == "rec" and entry is not ref.entry:  # a modified entry: keep its preprocessing
        ref = replace(ref, entry=entry)
    return _Stage(tasks.build(stage, session, ref), name, getattr(session, "engine", "?"))


def _is_session(obj) -> bool:
    return hasattr(obj, "run") and hasattr(obj, "inputs") and hasattr(obj, "outputs")


def _zoo_name(model) -> str | None:
    if isinstance(model, str) and model in BY_NAME:
        return model
    z = getattr(model, "zoo", None) or getattr(model, "entry", None)
    return getattr(z, "name", None)


def _describe(model) -> str:
    return repr(model) if isinstance(model, (str, Path)) else type(model).__name__


def _model_name(model, spec: TaskSpec, stages: dict[str, _Stage]) -> str:
    if len(spec.stages) > 1:
        return f"{model} ({', '.join(s.name for s in stages.values())})"
    return next(iter(stages.values())).name


def _data(spec: TaskSpec, data, n: int | None, seed: int) -> tuple[list, str]:
    if data is None:
        count = spec.n if n is None else n
        if not isinstance(count, int) or count < 1:
            raise UserError(f"n must be a whole number >= 1, got {count!r}")
        return datasets.generate(spec.dataset, count, seed), f"generated {spec.dataset} n={count} seed={seed}"
    if isinstance(data, (str, Path)):
        samples, desc = datasets.load(data), str(data)
    else:
        samples, desc = list(data), "given samples"
    if n is not None:
        samples = samples[:n]
    if not samples:
        raise UserError(f"no samples in {desc}; task {spec.name!r} needs {spec.dataset!r} data")
    wrong = {type(s).__name__ for s in samples if not isinstance(s, spec.samples)}
    if wrong:
        raise UserError(f"task {spec.name!r} cannot be scored on {', '.join(sorted(wrong))} data from {desc}; "
                        f"it needs {'/'.join(t.__name__ for t in spec.samples)} "
                        f"(e.g. datasets.generate({spec.dataset!r}, n, seed))")
    if spec.labels is not None:
        odd = {s.label for s in samples} - spec.labels
        if odd:
            raise UserError(f"task {spec.name!r} expects labels {sorted(spec.labels)}; {desc} has {sorted(odd)} "
                            f"(use the {spec.dataset!r} data set)")
    return samples, desc
