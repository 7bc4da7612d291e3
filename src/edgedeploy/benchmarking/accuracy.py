"""Accuracy of one benchmarked session, through the one accuracy registry
(:data:`edgedeploy.evaluation.TASKS`): the model's own task code (its resize, not the benchmark's
input shape, so accuracy is the model as deployed) on that task's generated data set.
"""

from __future__ import annotations

from edgedeploy.errors import UserError
from edgedeploy.evaluation import TASKS, TaskSpec, evaluate

# The tasks one session can be scored on (multi-model systems are evaluated with `eval`).
SCORERS: dict[str, TaskSpec] = {name: spec for name, spec in TASKS.items() if spec.single}


def scorer_for(model, dataset: str) -> TaskSpec:
    """The registry entry for ``model`` (a zoo model: its task and preprocessing are needed) on ``dataset``."""
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
    s = scorer_for(model, dataset)
    result = evaluate(session, s.name, like=model.zoo, n=samples, seed=seed)
    return f"{s.metric} on {samples} {s.dataset}", result.value
