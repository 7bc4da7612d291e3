"""Accuracy of a model or pipeline against ground truth, through one registry.

- :mod:`~edgedeploy.evaluation.registry`: :data:`TASKS`, per task its data, metric, models, how
  they run and how they are scored (the one accuracy registry: eval, bench, optimize, deploy);
- :mod:`~edgedeploy.evaluation.runner`: :func:`evaluate` (open the models, run, score);
- :mod:`~edgedeploy.evaluation.scoring`: per-task scorers (predictions, samples) -> figure;
- :mod:`~edgedeploy.evaluation.metrics`: the metrics themselves (P/R/hmean, CER, ...).
"""

from edgedeploy.evaluation.registry import SYSTEMS, TASKS, TaskSpec, spec
from edgedeploy.evaluation.runner import EvalResult, evaluate
from edgedeploy.evaluation.scoring import score_ocr

__all__ = ["EvalResult", "SYSTEMS", "TASKS", "TaskSpec", "evaluate", "score_ocr", "spec"]
