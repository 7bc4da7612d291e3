"""Accuracy of a model (or an OCR system) on a real task, measured on generated or saved data.

>>> from edgedeploy.evaluation.runner import evaluate
>>> r = evaluate("ppocrv6-det", "det", engine="openvino")       # 20 generated pages
>>> r.metric, r.value                                          # ("hmean", 1.0)
>>> evaluate("ppocrv6", "ocr", det_model=quantized_session)    # one stage swapped

The optimiser, the tuner and the model server call :func:`evaluate`; ``edgedeploy eval`` is
its command line. One table, :data:`TASKS`, says per task what it runs, on which data, and
which number is the headline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgedeploy import datasets, tasks
from edgedeploy.datasets.samples import (ClassSample, ContainerSample, DocumentSample, LineSample,
                                         PageSample)
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.evaluation import metrics as M
from edgedeploy.tasks.common import Timings
from edgedeploy.zoo import BY_NAME, ZooEntry

Progress = Callable[[int, int], None]  # (samples done, samples in all)

# Layout classes that are made of text lines: on pages of paragraphs, any of them is right.
TEXT_CLASSES = frozenset({"text", "title", "header", "footer", "reference", "figure_caption",
                          "table_caption"})
LINE_COVERED = 0.5  # share of a line's box inside predicted text boxes for the line to count as found

# Multi-model tasks run a system: zoo models by stage. "ocr" is the PP-OCRv6 one.
SYSTEMS: dict[str, dict[str, str]] = {
    "ppocrv6": {"det": "ppocrv6-det", "cls": "ppocr-cls", "rec": "ppocrv6-rec"},
    "ppocrv4-paddle": {"det": "ppocrv4-det-paddle", "cls": "ppocr-cls-paddle", "rec": "ppocrv4-rec-paddle"},
}
SYSTEMS["ocr"] = SYSTEMS["ppocrv6"]


@dataclass(frozen=True)
class TaskSpec:
    """One evaluable task: the data it is scored on, its headline metric, the models it runs.

    stages: zoo tasks of the models it needs (one for a single-model task). batch: samples
    handed to the model at once (line tasks batch; page tasks take one page at a time).
    """

    name: str
    metric: str
    dataset: str
    n: int
    samples: tuple[type, ...]
    stages: tuple[str, ...]
    default: str  # zoo name (single model) or SYSTEMS key
    batch: int = 1
    description: str = ""


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("det", "hmean", "pages", 20, (PageSample, DocumentSample, ContainerSample), ("det",),
             "ppocrv6-det", description="text-line boxes, P/R/hmean at IoU 0.5"),
    TaskSpec("rec", "line_accuracy", "rec-lines", 100, (LineSample,), ("rec",), "ppocrv6-rec", batch=24,
             description="exact-line accuracy and CER of single-line crops"),
    TaskSpec("cls", "accuracy", "lines", 200, (ClassSample,), ("cls",), "ppocr-cls", batch=24,
             description="0/180 text-line direction"),
    TaskSpec("orientation", "accuracy", "orientation", 40, (ClassSample,), ("orientation",),
             "pplcnet-orientation", description="page turned 0/90/180/270 clockwise"),
    TaskSpec("layout", "hmean", "documents", 20, (DocumentSample,), ("layout",), "picodet-layout",
             description="paragraph/title blocks, P/R/hmean at IoU 0.5 (text classes as one)"),
    TaskSpec("ocr", "line_accuracy", "pages", 10, (PageSample, DocumentSample), ("det", "cls", "rec"),
             "ppocrv6", description="end to end: each true line read exactly by the box that found it"),
    TaskSpec("container", "container_accuracy", "containers", 40, (ContainerSample,), ("det", "rec"),
             "ppocrv6", description="ISO 6346 code read with a valid check digit"),
)}


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
        run = _RUNNERS[spec.name](stages)
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
    value, details = _SCORERS[spec.name](preds, samples)
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


def _spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}{did_you_mean(task, TASKS)}; choose one of {', '.join(TASKS)}")
    return TASKS[task]


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
    from edgedeploy import engines, zoo
    from edgedeploy.ingest import load_model

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
    if spec.name in ("cls", "orientation"):
        want = {"cls": {"0", "180"}, "orientation": {"0", "90", "180", "270"}}[spec.name]
        odd = {s.label for s in samples} - want
        if odd:
            raise UserError(f"task {spec.name!r} expects labels {sorted(want)}; {desc} has {sorted(odd)} "
                            f"(use the {spec.dataset!r} data set)")
    return samples, desc


# --- running each task over a batch of images: (predictions, {stage: Timings}) -------------------

def _single(attr: str | None = None):
    def runner(stages):
        (stage, s), = stages.items()

        def run(images):
            if s.task_obj.task in ("rec", "cls"):  # line tasks batch their crops themselves
                r = s.task_obj(images)
                return (r.texts if stage == "rec" else r.labels), {stage: r.timings}
            preds, total = [], Timings()
            for img in images:
                r = s.task_obj(img)
                preds.append(r if attr is None else getattr(r, attr))
                total = total + r.timings
            return preds, {stage: total}
        return run
    return runner


def _system(stages):
    det, rec = stages["det"].task_obj, stages["rec"].task_obj
    cls = stages["cls"].task_obj if "cls" in stages else None
    ocr = tasks.OCRSystem(det, cls, rec)

    def run(images):
        preds, times = [], {}
        for img in images:
            r = ocr(img)
            preds.append(r)
            for name, t in r.timings.items():
                times[name] = times.get(name, Timings()) + t
        return preds, times
    return run


_RUNNERS = {"det": _single("boxes"), "rec": _single(), "cls": _single(), "orientation": _single("label"),
            "layout": _single(), "ocr": _system, "container": _system}


# --- scoring: (headline value, details) --------------------------------------------------------

def _score_det(preds, samples):
    r = M.detection_prf(preds, [s.boxes for s in samples])
    return r.hmean, r.to_dict()


def _score_rec(preds, samples):
    r = M.recognition_metrics(preds, [s.text for s in samples])
    loose = M.recognition_metrics(preds, [s.text for s in samples], ignore_space=True)
    return r.accuracy, {"line_accuracy": r.accuracy, **r.to_dict(), "line_accuracy_ignoring_spaces": loose.accuracy}


def _score_class(preds, samples):
    r = M.classification_accuracy(preds, [s.label for s in samples])
    return r.accuracy, r.to_dict()


def _score_layout(preds, samples):
    """Blocks: each true paragraph/title block matched one-to-one by a predicted box of a text
    class at IoU >= 0.5, the text classes taken as one (hmean, precision, recall); boxes of
    other classes (figure, table, equation) are false positives. Also: the same per class
    (``class_hmean``: "title" must be called title), and ``line_recall``, the share of true
    lines with at least half of their box inside predicted text-class boxes."""
    boxes = [[b for b, lab in zip(p.boxes, p.labels)] for p in preds]
    labels = [["text" if lab in TEXT_CLASSES else lab for lab in p.labels] for p in preds]
    agnostic = M.detection_prf(boxes, [s.blocks for s in samples], pred_labels=labels,
                               gt_labels=[["text"] * len(s.blocks) for s in samples])
    by_class = M.detection_prf(boxes, [s.blocks for s in samples], pred_labels=[p.labels for p in preds],
                               gt_labels=[s.block_labels for s in samples])
    covered = total = 0
    for p, s in zip(preds, samples):
        text_boxes = [b for b, lab in zip(p.boxes, p.labels) if lab in TEXT_CLASSES]
        covered += sum(_inside(line, text_boxes) >= LINE_COVERED for line in s.boxes)
        total += len(s.boxes)
    d = agnostic.to_dict()
    d.pop("per_class")
    d.update(class_hmean=by_class.hmean, per_class=by_class.to_dict()["per_class"],
             line_recall=covered / total if total else 1.0)
    return agnostic.hmean, d


def _inside(quad: np.ndarray, rects: Sequence[np.ndarray]) -> float:
    """Share of the area of ``quad``'s bounding box inside the union of ``rects`` (x1,y1,x2,y2)."""
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    mask = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), bool)
    for r in rects:
        a, b, c, d = np.round(np.asarray(r) - [x0, y0, x0, y0]).astype(int)
        mask[max(b, 0):max(d, 0), max(a, 0):max(c, 0)] = True
    return float(mask.mean())


def score_ocr(pred_boxes: Sequence[Sequence], pred_texts: Sequence[Sequence[str]],
              samples: Sequence) -> tuple[float, dict]:
    """End-to-end OCR on pages: each true line is paired one-to-one with the predicted line of
    highest IoU >= 0.5 (ICDAR's greedy rule) and scored on that line's text; a missed line
    reads as "". Returns (line accuracy, details: line_accuracy, cer over true lines, the
    accuracy with spaces ignored, detection precision/recall/hmean, ``extra_lines`` predicted where no line is)."""
    read, truth, extra = [], [], 0
    for boxes, texts, s in zip(pred_boxes, pred_texts, samples):
        pairs = _pair(M._iou_matrix(list(boxes), list(s.boxes)), 0.5)
        by_gt = {j: texts[i] for i, j in pairs}
        read += [by_gt.get(j, "") for j in range(len(s.boxes))]
        truth += list(s.texts)
        extra += len(boxes) - len(pairs)
    rec = M.recognition_metrics(read, truth)
    loose = M.recognition_metrics(read, truth, ignore_space=True)  # PaddleOCR's default
    det = M.detection_prf([list(b) for b in pred_boxes], [s.boxes for s in samples])
    return rec.accuracy, {"line_accuracy": rec.accuracy, "cer": rec.cer, "lines": rec.lines,
                          "exact": rec.exact, "line_accuracy_ignoring_spaces": loose.accuracy,
                          "det_precision": det.precision, "det_recall": det.recall,
                          "det_hmean": det.hmean, "extra_lines": extra}


def _pair(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(prediction, truth) pairs, one-to-one, taken greedily by descending IoU >= threshold."""
    rows, cols = np.nonzero(iou >= threshold)
    used_p, used_g, pairs = set(), set(), []
    for k in np.argsort(-iou[rows, cols], kind="stable"):
        i, j = int(rows[k]), int(cols[k])
        if i not in used_p and j not in used_g:
            used_p.add(i), used_g.add(j), pairs.append((i, j))
    return pairs


def _score_ocr(preds, samples):
    return score_ocr([[line.box for line in p.lines] for p in preds], [p.texts for p in preds], samples)


_CODE = re.compile(r"[A-Z]{3}[UJZ][0-9]{7}")


def parse_container_code(texts: Sequence[str]) -> str | None:
    """The ISO 6346 code in OCR'd lines (reading order): letters and digits only, joined, then
    the first 11-character window shaped like a code whose check digit holds; failing that,
    the first code-shaped window (a read a gate would reject); None when there is none."""
    from edgedeploy.datasets.iso6346 import is_valid

    joined = re.sub(r"[^A-Z0-9]", "", "".join(texts).upper())
    shaped = [joined[i:i + 11] for i in range(len(joined) - 10) if _CODE.fullmatch(joined[i:i + 11])]
    return next((c for c in shaped if is_valid(c)), shaped[0] if shaped else None)


def _score_container(preds, samples):
    codes = [parse_container_code(p.texts) for p in preds]
    r = M.container_accuracy(codes, [s.code for s in samples])
    return r.accuracy, {"container_accuracy": r.accuracy, **r.to_dict()}


_SCORERS: dict[str, Callable] = {"det": _score_det, "rec": _score_rec, "cls": _score_class,
                                 "orientation": _score_class, "layout": _score_layout, "ocr": _score_ocr,
                                 "container": _score_container}
