"""Accuracy of one benchmarked session on a generated data set, through the model's own task code.

The task object (``edgedeploy.tasks``) does its own preprocessing (its resize, not the
benchmark's input shape), so accuracy is the model as deployed; the data set is made
deterministically from a seed (``edgedeploy.datasets``). One scorer per task:

| task | data set | figure |
|---|---|---|
| orientation | orientation | accuracy (4 classes) |
| cls | lines | accuracy (0/180) |
| rec | rec-lines | exact-line accuracy |
| det | pages | hmean at IoU 0.5 |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgedeploy.errors import UserError


@dataclass(frozen=True)
class Scorer:
    dataset: str
    metric: str
    score: Callable[[object, list], float]  # (task object, samples) -> figure in 0..1


def _classes(task, samples) -> float:
    from edgedeploy.evaluation.metrics import classification_accuracy

    return classification_accuracy([task(s.image).label for s in samples], [s.label for s in samples]).accuracy


def _lines(task, samples) -> float:
    from edgedeploy.evaluation.metrics import classification_accuracy

    preds = [label for s in samples for label in task([s.image]).labels]
    return classification_accuracy(preds, [s.label for s in samples]).accuracy


def _rec(task, samples) -> float:
    from edgedeploy.evaluation.metrics import recognition_metrics

    preds = [text for s in samples for text in task([s.image]).texts]
    return recognition_metrics(preds, [s.text for s in samples]).accuracy


def _det(task, samples) -> float:
    from edgedeploy.evaluation.metrics import detection_prf

    return detection_prf([list(task(s.image).boxes) for s in samples], [s.boxes for s in samples]).hmean


SCORERS: dict[str, Scorer] = {
    "orientation": Scorer("orientation", "accuracy", _classes),
    "cls": Scorer("lines", "accuracy", _lines),
    "rec": Scorer("rec-lines", "line accuracy", _rec),
    "det": Scorer("pages", "hmean@0.5", _det),
}


def scorer_for(model, dataset: str) -> Scorer:
    """The scorer for ``model`` (a zoo model: its task and preprocessing are needed) on ``dataset``."""
    if model.zoo is None:
        raise UserError(f"accuracy needs a zoo model (its task and preprocessing); {model.name} is a plain file")
    s = SCORERS.get(model.zoo.task)
    if s is None:
        raise UserError(f"no accuracy data set for task {model.zoo.task!r} ({model.name}); "
                        f"tasks with one: {', '.join(SCORERS)}")
    if dataset not in ("auto", s.dataset):
        raise UserError(f"data set {dataset!r} has no ground truth for a {model.zoo.task!r} model; use {s.dataset!r}")
    return s


def measure_accuracy(session, model, dataset: str, samples: int, seed: int = 0) -> tuple[str, float]:
    """(metric name, value in 0..1) of ``session`` on ``samples`` items of ``dataset``."""
    from edgedeploy import datasets, tasks, zoo

    s = scorer_for(model, dataset)
    task = tasks.build(model.zoo.task, session, zoo.fetch(model.zoo.name))
    return f"{s.metric} on {samples} {s.dataset}", s.score(task, datasets.generate(s.dataset, samples, seed))
