"""Tasks: image in, typed result out, around any session with ``inputs`` and ``run(feeds)``.

>>> from edgedeploy import engines, tasks, zoo
>>> model = zoo.fetch("ppocrv6-det")
>>> det = tasks.build("det", engines.load(model.path), model)
>>> det(cv2.imread("page.png")).boxes          # (N,4,2) quads in reading order

Each task class has ``preprocess`` / ``infer`` / ``postprocess`` so the three can be timed
apart; every result carries its :class:`Timings`.
"""

from __future__ import annotations

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.tasks.cls import ClsResult, TextlineClassifier, rotate_upside_down
from edgedeploy.tasks.common import SessionLike, Timings, describe_outputs
from edgedeploy.tasks.det import DetOptions, DetResult, TextDetector, db_postprocess
from edgedeploy.tasks.layout import LayoutDetector, LayoutOptions, LayoutResult
from edgedeploy.tasks.ocr import OCRLine, OCRResult, OCRSystem, crop_quad
from edgedeploy.tasks.orientation import OrientationClassifier, OrientationResult, upright
from edgedeploy.tasks.rec import CTCDecoder, RecResult, TextRecognizer
from edgedeploy import zoo
from edgedeploy.zoo import ZooEntry, ZooModel

TASKS = {
    "det": TextDetector,
    "rec": TextRecognizer,
    "cls": TextlineClassifier,
    "orientation": OrientationClassifier,
    "layout": LayoutDetector,
}

__all__ = [
    "TASKS", "build", "check_outputs",
    "TextDetector", "DetOptions", "DetResult", "db_postprocess",
    "TextRecognizer", "RecResult", "CTCDecoder",
    "TextlineClassifier", "ClsResult", "rotate_upside_down",
    "OrientationClassifier", "OrientationResult", "upright",
    "LayoutDetector", "LayoutOptions", "LayoutResult",
    "OCRSystem", "OCRResult", "OCRLine", "crop_quad",
    "SessionLike", "Timings",
]


def _task_class(task: str):
    try:
        return TASKS[task]
    except KeyError:
        raise UserError(f"unknown task {task!r}{did_you_mean(task, TASKS)}; choose one of {', '.join(TASKS)}") from None


def check_outputs(task: str, session: SessionLike, model_name: str = "the model") -> None:
    """Raise :class:`UserError` if ``session``'s outputs cannot be what ``task`` decodes."""
    cls = _task_class(task)
    if not cls.check_outputs(session.outputs):
        raise UserError(f"model {model_name} has outputs {describe_outputs(session.outputs)}; "
                        f"task {task!r} expects {cls.expects}")


def build(task: str, session: SessionLike, model: ZooModel | ZooEntry, **options):
    """The task object for ``session``, configured from a zoo model (or its entry).

    ``options`` go to the task's options dataclass (e.g. ``limit_side_len=960`` for det).
    A rec model's dictionary comes from the model's files, so ``rec`` needs a fetched
    :class:`ZooModel`; an entry alone is used if the model is already in the cache.
    """
    entry = model.entry if isinstance(model, ZooModel) else model
    cls = _task_class(task)
    if entry.task != task:
        raise UserError(f"zoo model {entry.name} is a {entry.task!r} model, not {task!r}; "
                        f"use task {entry.task!r} or a {task!r} model")
    check_outputs(task, session, entry.name)
    if task == "rec":
        if not isinstance(model, ZooModel):
            if not zoo.is_cached(entry.name):
                raise UserError(f"{entry.name} is not in the cache, so its dictionary is not either; "
                                f"run `edgedeploy zoo fetch {entry.name}` or pass zoo.fetch(...)")
            model = zoo.fetch(entry.name)
        return cls.from_zoo(session, model, **options)
    return cls.from_entry(session, entry, **options)
