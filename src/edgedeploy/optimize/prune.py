"""Structured pruning with knowledge distillation: fewer channels, the same answers.

1. The ONNX model becomes a torch module (:class:`~edgedeploy.optimize.torch_graph.TorchGraph`).
2. torch-pruning removes the ``ratio`` least important channels of every prunable layer
   (group L2 magnitude; the coupled channels of residual adds, concatenations and
   squeeze-excitation products go together; layers producing the model's outputs are kept).
3. The pruned student learns the original model's outputs (the teacher's, not labels) on the
   given input tensors: the teacher (ONNX Runtime, the original file) runs once on each whole
   input; for spatial models (dynamic height and width, output the input's size) each step
   takes random windows of the input and the same windows of the teacher's output. Adam with a
   cosine schedule; loss = binary cross-entropy plus dice loss to the teacher's probabilities
   where the output is one sigmoid map (as DB text detectors are trained), else mean squared error.
4. The student's weights go back into the original graph (same nodes); the caller's accuracy guard decides whether it is kept.

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


def _window(shape: tuple, size: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random size x size window (top-left multiple of 32) inside an NCHW shape: y, x, h, w."""
    h, w = shape[2:]
    ch, cw = min(size, h), min(size, w)
    y = int(rng.integers(0, h - ch + 1)) // 32 * 32 if h > ch else 0
    x = int(rng.integers(0, w - cw + 1)) // 32 * 32 if w > cw else 0
    return y, x, ch, cw


def prune_and_distill(src: str | Path, out: str | Path, inputs: list[np.ndarray], *, ratio: float,
                      steps: int = 600, batch: int = 8, crop: int = 192, lr: float = 1e-3, threads: int = 2,
                      seed: int = 0, progress: Callable[[int, int], None] | None = None,
                      say: Callable[[str], None] | None = None, time_budget_s: float | None = None) -> PruneReport:
    """Prune ``src`` (ONNX, float) by ``ratio`` of its channels, distil it from the original on
    ``inputs`` (arrays the model takes, NCHW), and write it to ``out`` (ONNX).

    Every precondition (operators, per-channel constants, one output) is checked before the teacher
    runs or any training starts; weights shared between nodes are untied on the way back.
    ``say``: phase lines, with a line per 10% and an ETA for distillation (:func:`eta_reporter`).
    ``time_budget_s``: distillation stops there, and the model so far is still written and reported."""
    import onnx
    import onnxruntime as ort
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
    proto = onnx.load(str(src))
    say = say or (lambda msg: None)
    student = TorchGraph(proto)
    student.check_prunable()
    if len(proto.graph.output) != 1:
        raise UserError(f"pruning covers models with one output; this one has {len(proto.graph.output)}")
    pool = [a[i:i + 1] for a in inputs for i in range(len(a))]
    say(f"pruning: the original's outputs on {len(pool)} inputs")
    teacher = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    targets = [teacher.run(None, {teacher.get_inputs()[0].name: x})[0] for x in pool]
    del teacher
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    spatial = (len(dims) == 4 and any(d.dim_param or not d.dim_value for d in dims[2:])
               and all(t.ndim == 4 and t.shape[2:] == x.shape[2:] for t, x in zip(targets, pool)))
    if not spatial and len({x.shape for x in pool}) > 1:
        raise UserError("the distillation inputs differ in shape and the model takes one shape; resize them first")

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ts = [], []
        for i in rng.integers(0, len(pool), size=n):
            if spatial:
                y, x, h, w = _window(pool[i].shape, crop, rng)
                xs.append(pool[i][:, :, y:y + h, x:x + w])
                ts.append(targets[i][:, :, y:y + h, x:x + w])
            else:
                xs.append(pool[i])
                ts.append(targets[i])
        if spatial and len({a.shape for a in xs}) > 1:  # inputs smaller than the crop: the smallest common window
            h, w = min(a.shape[2] for a in xs), min(a.shape[3] for a in xs)
            xs, ts = [a[:, :, :h, :w] for a in xs], [a[:, :, :h, :w] for a in ts]
        return np.ascontiguousarray(np.concatenate(xs)), np.ascontiguousarray(np.concatenate(ts))

    example = torch.from_numpy(sample(1)[0])
    with torch.no_grad():
        out_example = student(example)
    if isinstance(out_example, tuple):
        raise UserError("pruning covers models with one output")
    if out_example.ndim == 2:  # a classifier: its Linear head produces the classes, which must stay
        keep = [m for m in student.modules() if isinstance(m, torch.nn.Linear)][-1:]
    else:
        keep = [m for m in student.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
                and m.out_channels == out_example.shape[1]][-1:]
    macs0, params0 = tp.utils.count_ops_and_params(student, example)
    pruner = tp.pruner.MetaPruner(student, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=keep, round_to=8)
    say(f"pruning: removing {ratio:.0%} of channels")
    pruner.step()
    macs1, params1 = tp.utils.count_ops_and_params(student, example)
    sigmoid_map = out_example.shape[1] == 1 and all(float(t.min()) >= 0.0 and float(t.max()) <= 1.0 for t in targets)
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
        xb, tb = sample(batch)
        y = student(torch.from_numpy(xb))
        target = torch.from_numpy(tb)
        if sigmoid_map:  # DB's own training loss, with the teacher's map as the label
            dice = 1 - 2 * (y * target).sum() / (y.sum() + target.sum() + 1e-6)
            loss = torch.nn.functional.binary_cross_entropy(y.clamp(1e-6, 1 - 1e-6), target) + dice
        else:
            loss = torch.nn.functional.mse_loss(y, target)
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
    log.info("pruned %.0f%%: MACs %.2fG→%.2fG, distillation loss %.4f→%.4f", 100 * ratio, macs0 / 1e9, macs1 / 1e9, head, tail)
    return PruneReport(ratio, int(macs0), int(macs1), int(params0), int(params1), len(losses), len(pool), float(head),
                       float(tail), time.perf_counter() - t0, "x".join(map(str, example.shape)), steps, time_budget_s)
