"""Structured pruning with knowledge distillation: fewer channels, the same answers.

1. The ONNX model becomes a torch module (:class:`~edgedeploy.optimize.torch_graph.TorchGraph`).
2. torch-pruning removes the ``ratio`` least important channels of every prunable layer
   (group L2 magnitude; the coupled channels of residual adds, concatenations and
   squeeze-excitation products go together; layers producing the model's outputs are kept).
3. The pruned student learns the original model's outputs (the teacher's, not labels) on the
   given input tensors: the teacher (ONNX Runtime, the original file) runs once on each whole
   input; for spatial models (dynamic height and width, output the input's size) each step
   takes random windows of the input and the same windows of the teacher's output; other models
   (classifiers, detection heads) learn on whole inputs. Adam with a cosine schedule; the loss per output
   (:func:`_loss_kinds`): binary cross-entropy plus dice for one sigmoid map (as DB text detectors
   are trained), quality focal loss for other sigmoid scores, KL divergence for softmax
   probabilities, else mean squared error over the teacher's variance; with several outputs, their mean.
4. The student's weights go back into the graph (same nodes; the cleaned graph where the original
   had operators only the cleaning removes); the caller's accuracy guard decides whether it is kept.

Distilling on the user's own images (``--calib``) is what keeps the student right on their data;
on generated data it learns that data.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class PruneReport:
    ratio: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    steps: int
    samples: int
    loss_first: float
    loss_last: float
    seconds: float
    macs_input: str = ""  # the input shape MACs were counted on
    steps_planned: int = 0
    time_budget_s: float | None = None  # distillation stopped here, still reported (steps < steps_planned)

    def describe(self) -> str:
        return (f"prune {self.ratio:.0%} of channels (MACs {self.macs_before / 1e9:.2f}G→{self.macs_after / 1e9:.2f}G "
                f"on {self.macs_input or 'the example input'}, "
                f"params {self.params_before / 1e6:.2f}M→{self.params_after / 1e6:.2f}M), distilled from the original "
                f"for {self.steps} steps on {self.samples} inputs (loss {self.loss_first:.4f}→{self.loss_last:.4f})"
                + (f"; stopped by the {self.time_budget_s:g} s time budget after {self.steps} of {self.steps_planned} "
                   "steps" if self.steps_planned and self.steps < self.steps_planned else ""))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_ratio(ratio: float) -> float:
    if not 0.0 < ratio < 0.9:
        raise UserError(f"--prune {ratio}: expected a fraction of channels to remove, above 0 and below 0.9 (e.g. 0.3)")
    return ratio


ETA_AFTER_S = 2.0  # phases expected to take longer get a line per 10% with the time left


def eta_reporter(say: Callable[[str], None], phase: str, total: int) -> Callable[[int], None]:
    """``step(done)`` → one line through ``say`` at each 10% of ``total`` with the elapsed time and an ETA,
    once the phase is expected to last over :data:`ETA_AFTER_S`; the phase's first line is said at once."""
    t0 = time.perf_counter()
    said = [0]
    say(f"{phase}: {total} steps")

    def step(done: int) -> None:
        tenth = done * 10 // max(total, 1)
        elapsed = time.perf_counter() - t0
        if tenth > said[0] and elapsed / done * total > ETA_AFTER_S:
            said[0] = tenth
            say(f"{phase}: {10 * tenth}% ({done}/{total} steps), {elapsed:.0f} s elapsed, "
                f"ETA {elapsed / done * (total - done):.0f} s")

    return step


def _window(shape: tuple, size: int | tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random window of ``size`` (an int for a square) inside an NCHW shape, top-left a multiple of 32: y, x, h, w."""
    h, w = shape[2:]
    sh, sw = (size, size) if isinstance(size, int) else size
    ch, cw = min(sh, h), min(sw, w)
    y = int(rng.integers(0, h - ch + 1)) // 32 * 32 if h > ch else 0
    x = int(rng.integers(0, w - cw + 1)) // 32 * 32 if w > cw else 0
    return y, x, ch, cw


_MODES = {"window": "random windows of the inputs", "whole": "whole inputs"}


def _cleaned(proto, say: Callable[[str], None]):
    """``proto`` through the graph cleaning (:func:`edgedeploy.optimize.graph.optimize_graph`: BatchNorm folded
    into convolutions, Shape/Slice arithmetic folded, Constant nodes) when it holds operators the torch graph
    does not cover; the pruned model is then the cleaned graph with new weights."""
    from edgedeploy.optimize import graph
    from edgedeploy.optimize.torch_graph import SUPPORTED

    others = sorted({n.op_type for n in proto.graph.node} - set(SUPPORTED))
    if not others:
        return proto
    say(f"pruning: cleaning the graph first ({', '.join(others)})")
    cleaned, _ = graph.optimize_graph(proto)
    return cleaned


@dataclass
class _Data:
    """What the student learns from: ``mode`` "window" (outputs are maps aligned with the input: random windows
    of both each step) or "whole"; ``pool`` inputs and ``targets`` (one list of outputs each)."""

    mode: str
    pool: list[np.ndarray]
    targets: list[list[np.ndarray]]

    def sample(self, n: int, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
        xs, ts = [], []
        for i in rng.integers(0, len(self.pool), size=n):
            if self.mode == "window":
                y, x, h, w = _window(self.pool[i].shape, crop, rng)
                xs.append(self.pool[i][:, :, y:y + h, x:x + w])
                ts.append([t[:, :, y:y + h, x:x + w] for t in self.targets[i]])
            else:
                xs.append(self.pool[i])
                ts.append(self.targets[i])
        if self.mode == "window" and len({a.shape for a in xs}) > 1:  # inputs smaller than the crop: a common window
            h, w = min(a.shape[2] for a in xs), min(a.shape[3] for a in xs)
            xs, ts = [a[:, :, :h, :w] for a in xs], [[t[:, :, :h, :w] for t in tt] for tt in ts]
        return (np.ascontiguousarray(np.concatenate(xs)),
                [np.ascontiguousarray(np.concatenate(k)) for k in zip(*ts)])


def _distillation_data(src, proto, pool: list[np.ndarray]) -> _Data:
    """Run the teacher (ONNX Runtime, the original model) once on each input of ``pool``.

    Outputs that are not maps aligned with the input (a detection head's flattened levels, classes) are
    learnt on whole inputs: windows with the teacher run on each were tried on PicoDet and the student, fine
    on windows, lost every box on whole pages (hmean 0.88 → 0.00; whole pages: 0.93)."""
    import onnxruntime as ort

    teacher = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    name = teacher.get_inputs()[0].name
    targets = [teacher.run(None, {name: x}) for x in pool]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and any(d.dim_param or not d.dim_value for d in dims[2:]) and all(
            t.ndim == 4 and t.shape[2:] == x.shape[2:] for ts, x in zip(targets, pool) for t in ts):
        return _Data("window", pool, targets)
    if len({x.shape for x in pool}) > 1:
        raise UserError("the distillation inputs differ in shape and the model takes one shape; resize them first")
    return _Data("whole", pool, targets)


def _loss_kinds(data: _Data) -> list[tuple[str, float]]:
    """Per output, how the student is scored against the teacher, and the teacher's variance (for MSE):
    "map" (one sigmoid map aligned with the input, as DB text detectors make: binary cross-entropy plus
    dice loss, as they are trained), "softmax" (probabilities over the last axis: KL divergence),
    "sigmoid" (other values in [0, 1], e.g. a detector's class scores: quality focal loss, binary
    cross-entropy scaled by the squared gap and summed over the teacher's total score, as GFL detectors
    are trained — plain cross-entropy drowns the few confident places in the background, and dice would
    sharpen soft scores) or "mse" (mean squared error over the teacher's variance, so outputs weigh alike)."""
    kinds = []
    for k in range(len(data.targets[0])):
        ts = [t[k] for t in data.targets]
        lo, hi = min(float(t.min()) for t in ts), max(float(t.max()) for t in ts)
        var = float(np.mean([t.var() for t in ts])) + 1e-12
        probs = 0.0 <= lo and hi <= 1.0
        if probs and data.mode == "window" and len(data.targets[0]) == 1 and ts[0].shape[1] == 1:
            kinds.append(("map", var))
        elif probs and ts[0].shape[-1] > 1 and all(np.allclose(t.sum(-1), 1.0, atol=1e-3) for t in ts):
            kinds.append(("softmax", var))
        else:
            kinds.append(("sigmoid" if probs else "mse", var))
    return kinds


def _loss(kind: str, var: float, y, target):
    import torch
    import torch.nn.functional as F

    if kind == "map":  # DB's own training loss, with the teacher's map as the label
        dice = 1 - 2 * (y * target).sum() / (y.sum() + target.sum() + 1e-6)
        return F.binary_cross_entropy(y.clamp(1e-6, 1 - 1e-6), target) + dice
    if kind == "sigmoid":
        bce = F.binary_cross_entropy(y.clamp(1e-6, 1 - 1e-6), target, reduction="none")
        return (bce * (y - target).abs().pow(2)).sum() / target.sum().clamp_min(1.0)
    if kind == "softmax":
        return (target * (torch.log(target.clamp_min(1e-8)) - torch.log(y.clamp_min(1e-8)))).sum(-1).mean()
    return F.mse_loss(y, target) / var


def prune_and_distill(src: str | Path, out: str | Path, inputs: list[np.ndarray], *, ratio: float,
                      steps: int = 600, batch: int = 8, crop: int = 192, lr: float = 1e-3, threads: int = 2,
                      seed: int = 0, keep_head: bool = False, progress: Callable[[int, int], None] | None = None,
                      say: Callable[[str], None] | None = None, time_budget_s: float | None = None) -> PruneReport:
    """Prune ``src`` (ONNX, float) by ``ratio`` of its channels, distil it from the original on
    ``inputs`` (arrays the model takes, NCHW), and write it to ``out`` (ONNX).

    Every precondition (operators, per-channel constants) is checked before the teacher runs or any training
    starts; weights shared between nodes are untied on the way back. Graphs with operators the torch graph does
    not cover are cleaned first (:func:`_cleaned`). Several outputs: the loss is the mean of each output's
    (:func:`_loss_kinds`), and the layers making them keep their channels. ``keep_head``: also keep the layers
    that do not reach every output (a detector's per-level head), pruning the backbone and neck only.
    ``batch``, ``crop``: a step takes ``batch`` windows of ``crop`` x ``crop`` pixels, or as many whole inputs as
    hold as many pixels (at least one, at most ``batch``).
    ``say``: phase lines, with a line per 10% and an ETA for distillation (:func:`eta_reporter`).
    ``time_budget_s``: distillation stops there, and the model so far is still written and reported."""
    import onnx
    import torch
    import torch_pruning as tp

    from edgedeploy.optimize.torch_graph import TorchGraph, write_back

    check_ratio(ratio)
    if not inputs:
        raise UserError("pruning needs input data to distil on: give --calib or --task")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    say = say or (lambda msg: None)
    proto = _cleaned(onnx.load(str(src)), say)
    student = TorchGraph(proto)
    student.check_prunable()
    pool = [a[i:i + 1] for a in inputs for i in range(len(a))]
    say(f"pruning: the original's outputs on {len(pool)} inputs")
    data = _distillation_data(src, proto, pool)
    kinds = _loss_kinds(data)
    example = torch.from_numpy(data.sample(1, crop, rng)[0])
    full = torch.from_numpy(np.ascontiguousarray(pool[0]))
    keep = student.fixed_channel_modules() | (student.head_modules() if keep_head else set())
    macs0, params0 = tp.utils.count_ops_and_params(student, full)
    pruner = tp.pruner.MetaPruner(student, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=[student.convs[k] for k in sorted(keep)],
                                  round_to=8)
    # a step sees at most batch x crop x crop pixels: whole 800x608 pages in eights would take seconds a step
    pixels = crop * crop if data.mode == "window" else int(np.prod(data.pool[0].shape[2:]))
    batch = max(1, min(batch, batch * crop * crop // max(pixels, 1)))
    say(f"pruning: removing {ratio:.0%} of channels ({len(keep)} layers kept whole); the student learns on "
        f"{_MODES[data.mode]}, {batch} a step")
    pruner.step()
    macs1, params1 = tp.utils.count_ops_and_params(student, full)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    student.train()
    losses = []
    tick = eta_reporter(say, "distillation", steps)
    t_distill = time.perf_counter()
    for step in range(steps):
        if time_budget_s is not None and step and time.perf_counter() - t_distill > time_budget_s:
            say(f"distillation: time budget {time_budget_s:g} s reached after {step} of {steps} steps")
            break
        xb, tbs = data.sample(batch, crop, rng)
        ys = student(torch.from_numpy(xb))
        ys = ys if isinstance(ys, tuple) else (ys,)
        loss = sum(_loss(kind, var, y, torch.from_numpy(t)) for (kind, var), y, t in zip(kinds, ys, tbs)) / len(ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        tick(step + 1)
        if progress:
            progress(step + 1, steps)
    student.eval()
    onnx.save(write_back(student, proto), str(out))
    head, tail = np.mean(losses[:10]), np.mean(losses[-10:])
    seconds = time.perf_counter() - t0
    log.info("pruned %.0f%%: MACs %.2fG→%.2fG, distillation loss %.4f→%.4f, %d steps of %d %s inputs in %.0f s",
             100 * ratio, macs0 / 1e9, macs1 / 1e9, head, tail, len(losses), batch, data.mode, seconds)
    return PruneReport(ratio, int(macs0), int(macs1), int(params0), int(params1), len(losses), len(pool),
                       float(head), float(tail), seconds, "x".join(map(str, full.shape)), steps, time_budget_s)
