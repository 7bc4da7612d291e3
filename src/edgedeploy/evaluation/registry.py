"""The one accuracy registry: per task, the data it is scored on, the headline metric, the models
it runs, how it runs them and how it scores them. ``edgedeploy eval``, ``bench --dataset``,
``optimize`` and ``deploy`` all measure accuracy through it (:func:`edgedeploy.evaluation.evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgedeploy import tasks
from edgedeploy.datasets.samples import ClassSample, ContainerSample, DocumentSample, LineSample, PageSample
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.evaluation import scoring as S
from edgedeploy.tasks.common import Timings

Runner = Callable[[dict], Callable[[list], tuple[list, dict[str, Timings]]]]
Scorer = Callable[[list, list], tuple[float, dict]]

# Multi-model tasks run a system: zoo models by stage. "ocr" is the PP-OCRv6 one.
SYSTEMS: dict[str, dict[str, str]] = {
    "ppocrv6": {"det": "ppocrv6-det", "cls": "ppocr-cls", "rec": "ppocrv6-rec"},
    "ppocrv4-paddle": {"det": "ppocrv4-det-paddle", "cls": "ppocr-cls-paddle", "rec": "ppocrv4-rec-paddle"},
}
SYSTEMS["ocr"] = SYSTEMS["ppocrv6"]


@dataclass(frozen=True)
class TaskSpec:
    """One evaluable task: the data it is scored on, its headline metric, the models it runs.

    stages: zoo tasks of the models it needs (one for a single-model task). run: given the
    opened stages ({stage: object with ``task_obj``}), a function from a batch of images to
    (predictions, {stage: Timings}). score: (predictions, samples) -> (headline value, details).
    batch: samples handed to the model at once (line tasks batch; page tasks take one at a time).
    """

    name: str
    metric: str
    dataset: str
    n: int
    samples: tuple[type, ...]
    stages: tuple[str, ...]
    default: str  # zoo name (single model) or SYSTEMS key
    run: Runner
    score: Scorer
    batch: int = 1
    labels: frozenset[str] | None = None  # the class labels a classification task's data must have
    description: str = ""

    @property
    def single(self) -> bool:
        """Scores one model (bench, optimize and deploy measure these on one session)."""
        return len(self.stages) == 1


# --- running a task over a batch of images: (predictions, {stage: Timings}) --------------------

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


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("det", "hmean", "pages", 20, (PageSample, DocumentSample, ContainerSample), ("det",),
             "ppocrv6-det", run=_single("boxes"), score=S.score_det,
             description="text-line boxes, P/R/hmean at IoU 0.5"),
    TaskSpec("rec", "line_accuracy", "rec-lines", 100, (LineSample,), ("rec",), "ppocrv6-rec", batch=24,
             run=_single(), score=S.score_rec,
             description="exact-line accuracy and CER of single-line crops"),
    TaskSpec("cls", "accuracy", "lines", 200, (ClassSample,), ("cls",), "ppocr-cls", batch=24,
             run=_single(), score=S.score_class, labels=frozenset({"0", "180"}),
             description="0/180 text-line direction"),
    TaskSpec("orientation", "accuracy", "orientation", 40, (ClassSample,), ("orientation",),
             "pplcnet-orientation", run=_single("label"), score=S.score_class,
             labels=frozenset({"0", "90", "180", "270"}), description="page turned 0/90/180/270 clockwise"),
    TaskSpec("layout", "hmean", "documents", 20, (DocumentSample,), ("layout",), "picodet-layout",
             run=_single(), score=S.score_layout,
             description="paragraph/title blocks, P/R/hmean at IoU 0.5 (text classes as one)"),
    TaskSpec("ocr", "line_accuracy", "pages", 10, (PageSample, DocumentSample), ("det", "cls", "rec"),
             "ppocrv6", run=_system, score=S.score_ocr_system,
             description="end to end: each true line read exactly by the box that found it"),
    TaskSpec("container", "container_accuracy", "containers", 40, (ContainerSample,), ("det", "rec"),
             "ppocrv6", run=_system, score=S.score_container,
             description="ISO 6346 code read with a valid check digit"),
)}


def spec(task: str) -> TaskSpec:
    """The registry entry of ``task``; :class:`UserError` with a suggestion for an unknown one."""
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}{did_you_mean(task, TASKS)}; choose one of {', '.join(TASKS)}")
    return TASKS[task]
