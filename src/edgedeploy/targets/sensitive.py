"""Sensitive layers out of INT8 on the targets: the project's sensitivity ranking
(:mod:`edgedeploy.optimize.sensitivity`) picks the nodes a target's INT8 artefact keeps in float.

A detector's head (box regression scaled to pixels, scores joined by a Concat) collapses under
INT8 on every target path; nothing else in the graph needs to stay in float. The nodes are
ranked by the error each adds itself, on the calibration inputs, and kept in float 1, 2, 4, ...
at a time (:func:`edgedeploy.optimize.sensitivity.float_counts`) until the task metric is within
the budget — on the stand-in (ONNX Runtime) for TensorRT's QDQ model, on the simulator for RKNN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.optimize import sensitivity

MAX_FLOAT_SHARE = 0.25  # beyond a quarter of the quantizable nodes in float, the INT8 artefact no longer pays
NO_GAIN_AFTER = 8  # this many nodes in float and no gain at all: the loss is spread over the network, stop


@dataclass
class Outcome:
    """The nodes kept in float, the metric reached, and each step tried (float node count, metric)."""

    float_nodes: list[dict] = field(default_factory=list)
    metric: float | None = None
    steps: list[tuple[int, float]] = field(default_factory=list)
    spread: bool = False  # no gain from the most sensitive nodes: the loss is not in a few layers

    def note(self, how: str) -> str:
        steps = ", ".join(f"{k} in float: {m:.3f}" for k, m in self.steps)
        names = ", ".join(f"{n['name']} ({n['op']})" for n in self.float_nodes) or "none"
        spread = "; no gain from the most sensitive nodes: the INT8 loss is spread over the network" if self.spread else ""
        return f"INT8 sensitive nodes kept in float ({how}): {names}; steps {steps}{spread}"


def keep_float(float_onnx: Path, int8_onnx: Path, feeds: list[dict], *, quantize: Callable[[list[str]], float],
               first_metric: float, reference: float, budget: float, say: Callable[[str], None],
               threads: int = 2) -> Outcome:
    """``int8_onnx`` (a QDQ model of ``float_onnx``, metric ``first_metric``) is over ``budget`` below
    ``reference``: rank its nodes by own error on ``feeds`` and call ``quantize(exclude)`` (which
    rebuilds the artefact keeping ``exclude`` in float and returns its metric) with 1, 2, 4, ...
    nodes until the metric holds. The artefact left is the best one tried (``quantize`` is called
    once more with the best set when the last step was not the best)."""
    outcome = Outcome(metric=first_metric, steps=[(0, first_metric)])
    ranked = sensitivity.rank(sensitivity.layer_errors(float_onnx, int8_onnx, feeds, threads=threads))
    ranked = [e for e in ranked if e.contribution > 0] or ranked
    best_k, last_k = 0, 0
    for k in sensitivity.float_counts(len(ranked), MAX_FLOAT_SHARE):
        say(f"INT8: {k} sensitive node(s) in float")
        metric = quantize([e.name for e in ranked[:k]])
        outcome.steps.append((k, metric))
        last_k = k
        if metric > outcome.metric:
            best_k, outcome.metric = k, metric
        if reference - metric <= budget:
            break
        if k >= NO_GAIN_AFTER and outcome.metric <= first_metric:
            outcome.spread = True
            break
    if last_k != best_k:
        quantize([e.name for e in ranked[:best_k]])
    outcome.float_nodes = [e.to_dict() for e in ranked[:best_k]]
    return outcome


FRONT_SHARES = (0.0, 0.125, 0.25, 0.4)  # share of Convs kept in float after the head: PicoDet needs 0.125-0.4


def keep_front_float(prepared: Path, *, quantize: Callable[[list[str]], float], first_metric: float,
                     reference: float, budget: float, say: Callable[[str], None]) -> tuple[list[str] | None, list[str]]:
    """An INT8 artefact of ``prepared`` (the cleaned float graph, metric ``first_metric``) is over ``budget``
    below ``reference``: keep the head and a growing share (:data:`FRONT_SHARES`) of the first Convs in
    float (:func:`edgedeploy.targets.tensorrt.float_front`), ``quantize(exclude)`` rebuilding the artefact
    and returning its metric, until it holds. Where the ranking of :func:`keep_float` finds no few
    culprits (a detector whose early layers and head both lose range), this order does.
    Returns (the best set kept in float, None when nothing beat the first; the steps tried); the
    artefact left is the best one (``quantize`` is called once more when the last step was not)."""
    from edgedeploy.targets.tensorrt import conv_count, float_front

    n = conv_count(prepared)
    steps, best, exclude = [], (first_metric, None), None
    for share in FRONT_SHARES:
        exclude = float_front(prepared, round(share * n))
        say(f"INT8: head + first {round(share * n)} of {n} Convs in float")
        metric = quantize(exclude)
        steps.append(f"head + {round(share * n)} Convs in float: {metric:.3f}")
        if metric > best[0]:
            best = (metric, exclude)
        if reference - metric <= budget:
            break
    if best[1] is not None and best[1] != exclude:
        quantize(best[1])
    return best[1], steps
