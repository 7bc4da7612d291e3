"""The one call deploy makes: the artefacts a target runs, each checked as far as this machine can.

Every figure carries how it was obtained (:mod:`edgedeploy.targets.artifact`); latency is never
taken from emulation or a simulator. The ARM CPU builders live here, the accelerators' in
:mod:`edgedeploy.targets.accelerators`.

Raspberry Pi 5 (and the other ARM CPUs) get both an ONNX Runtime and an ncnn artefact; the
rule that picks the primary one is stated in :data:`ARM_RULE`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.hardware.targets import Runtime, Target, target as get_target
from edgedeploy.ingest import Model, load_model
from edgedeploy.targets import accelerators
from edgedeploy.targets.artifact import PRECISION_RANK, Artifact, Context, drop_of

log = logging.getLogger(__name__)

ARM_RULE = ("primary ARM CPU artefact: the higher task metric under emulation; on a tie (within 0.5 point) "
            "onnxruntime, the reference runtime, because no ARM speed can be measured here")
EMULATED_SAMPLES = 4  # emulation runs ~50-100x slower than native: a few samples state the metric under ARM kernels
TIE = 0.005


def build_artifacts(target: str | Target, model, calib, out_dir: str | Path, *, task: str | None = None,
                    precisions: list[str] | None = None, samples: int | None = None,
                    shape: tuple[int, ...] | None = None, engines_allowed: list[str] | None = None,
                    max_accuracy_drop: float = 0.01, progress: Callable[[str], None] | None = None) -> list[Artifact]:
    """Write into ``out_dir`` the artefacts ``target`` runs for ``model``, each verified here as far as possible.

    calib: an :class:`~edgedeploy.optimize.calibration.CalibrationSet` (None: generated from the
        model's task). precisions: the ones allowed (None: all the target runs; an unknown one is a
        UserError saying which the target can run). samples: task samples per metric.
        shape: the fixed input shape (default: the model's, else its zoo example shape).
        engines_allowed: only these runtimes of the target (None: all).
        max_accuracy_drop: the budget (absolute, 0..1) that picks each accelerator's primary artefact.
    """
    t = get_target(target)
    m = load_model(model)
    wanted = precisions or t.precisions()
    runtimes = [r for p in wanted for r in t.runtimes_for(p)]
    runtimes = [r for r in dict.fromkeys(runtimes) if engines_allowed is None or r.engine in engines_allowed]
    t.check_memory(m.size_bytes() * 2, f"{m.name} (weights + activations, about twice its file)")
    say = progress or (lambda what: log.info(what))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = task or (m.zoo.task if m.zoo else None)
    with engines.load(m, engine="onnxruntime") as fp32:
        shape = tuple(shape) if shape else _shape(fp32, m)
        calib = calib if calib is not None else _calibration(fp32, m, task)
        ctx = Context(t, m, fp32, shape, calib, out, task, samples, say, max_accuracy_drop)
        arts = []
        for r in runtimes:
            for p in (p for p in r.precisions if p in wanted):
                builder = _BUILDERS.get((r.engine, p))
                if builder is None:
                    continue
                say(f"{t.key}: {r.engine} {p}")
                try:
                    arts.append(builder(ctx, r, p))
                except UserError as exc:
                    arts.append(Artifact(target=t.key, engine=r.engine, unit=r.unit, precision=p, files=[],
                                         notes=[f"not built: {exc}"]))
        _fall_back(ctx, arts, runtimes)
    _choose_primary(arts, max_accuracy_drop)
    _withdraw_over_budget(arts, out, max_accuracy_drop)
    return arts


def _within(a: Artifact, budget: float) -> bool:
    drop = drop_of(a)
    return bool(a.files) and (drop is None or drop <= budget)


def _fall_back(ctx: Context, arts: list[Artifact], runtimes: list[Runtime]) -> None:
    """An accelerator whose every artefact is over the accuracy budget gets the next more precise one
    its runtime builds (INT8 → FP16 → FP32), even beyond the precisions asked: a broken INT8 never ships
    alone (``_withdraw_over_budget`` then leaves it out)."""
    for r in runtimes:
        mine = [a for a in arts if a.engine == r.engine and a.unit == r.unit]
        if r.unit == "cpu" or not mine or any(_within(a, ctx.budget) for a in mine):
            continue
        worst = min(mine, key=lambda a: PRECISION_RANK.get(a.precision, 9))
        for p in sorted(r.precisions, key=lambda p: PRECISION_RANK.get(p, 9)):
            if PRECISION_RANK.get(p, 9) <= PRECISION_RANK.get(worst.precision, 9) or (r.engine, p) not in _BUILDERS \
                    or any(a.precision == p for a in mine):
                continue
            ctx.say(f"{ctx.target.key}: {r.engine} {p} (fallback: {worst.precision} over the accuracy budget)")
            art = _BUILDERS[(r.engine, p)](ctx, r, p)
            art.notes.append(f"fallback: {worst.precision} is over the accuracy budget ({ctx.budget:.1%}), "
                             f"so {p} is built even where not asked")
            arts.append(art)
            if _within(art, ctx.budget):
                break


def _withdraw_over_budget(arts: list[Artifact], out: Path, budget: float) -> None:
    """An artefact over the accuracy budget that is not its unit's primary is not shipped: its files
    are removed (its figures stay, with the reason), so the deployment holds no broken model."""
    for a in arts:
        drop = drop_of(a)
        if a.primary or not a.files or drop is None or drop <= budget:
            continue
        for f in a.files:
            (out / f).unlink(missing_ok=True)
        for parent in {(out / f).parent for f in a.files}:
            if parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        a.notes.append(f"not shipped: {a.accuracy.value:.3f} against FP32 {a.reference.value:.3f} ({a.accuracy.how}), "
                       f"a {drop:.1%} drop, over the budget ({budget:.1%}); the primary {a.unit} artefact ships "
                       f"instead; files were {', '.join(a.files)}")
        a.files = []


def _shape(fp32, m: Model) -> tuple[int, ...]:
    spec = fp32.inputs[0]
    if None not in spec.shape:
        return tuple(spec.shape)
    if m.zoo:
        return tuple(m.zoo.example_shape)
    raise UserError(f"{m.name} has a dynamic input shape ({spec.shape_str()}); edge targets need a fixed one: "
                    "give the shape (e.g. 1x3x640x640)")


def _calibration(fp32, m: Model, task: str | None):
    if not task or not m.zoo:
        return None
    from edgedeploy import tasks
    from edgedeploy.optimize import calibration

    return calibration.build(fp32, calib=None, task_obj=tasks.build(task, fp32, m.zoo), task=task, n=16)


def _arm_onnxruntime(ctx: Context, r: Runtime, precision: str) -> Artifact:
    from edgedeploy.targets.emulation import EmulatedSession

    d = ctx.out / f"{ctx.target.key}-onnxruntime-{precision}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.onnx"
    shutil.copyfile(ctx.model.onnx_path(), path)
    return _emulated(ctx, r, precision, [path], lambda: EmulatedSession(path, cpu=ctx.target.qemu_cpu, like=ctx.fp32))


def _arm_onnxruntime_int8(ctx: Context, r: Runtime, precision: str) -> Artifact:
    """ORT's U8S8 QDQ recipe (:mod:`edgedeploy.optimize.quantize_ort`) on the cleaned graph, activation
    ranges at a high percentile unless the calibration names its method; over the budget on this machine's
    ORT, the head and the first Convs stay float (:func:`edgedeploy.targets.sensitive.keep_front_float`;
    ORT runs them in FP32 on the board). Checked with ARM's INT8 kernels; the same file's agreement on x86
    is stated beside it (INT8 rounding differs between the two)."""
    from dataclasses import replace

    from edgedeploy.optimize.quantize_ort import quantize_static
    from edgedeploy.targets import sensitive, tensorrt
    from edgedeploy.targets.emulation import EmulatedSession

    if ctx.calib is None:
        raise UserError("INT8 for the ARM CPU needs calibration data; give calib or allow fp32")
    d = ctx.out / f"{ctx.target.key}-onnxruntime-int8"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.int8.onnx"
    calib = replace(ctx.calib, method="percentile") if ctx.calib.method == "default" else ctx.calib
    prepared = tensorrt.prepare(ctx.model.onnx_path(), d / ".float.onnx")
    notes = []

    def quantize(exclude: list[str]) -> float | None:
        quantize_static(prepared, path, calib, exclude=exclude)
        with engines.load(path, engine="onnxruntime") as x86:
            got, _ = ctx.metric(x86, "measured")
        return None if got is None else got.value

    try:
        quantize_static(prepared, path, calib)
        with engines.load(path, engine="onnxruntime") as x86:
            first, ref = ctx.metric(x86, "measured")
        if first is not None and ref.value - first.value > ctx.budget:
            kept, steps = sensitive.keep_front_float(prepared, quantize=quantize, first_metric=first.value,
                                                     reference=ref.value, budget=ctx.budget, say=ctx.say)
            notes.append(f"INT8 over budget on this machine's ORT at first ({first.value:.3f} vs FP32 {ref.value:.3f}); "
                         f"tried {'; '.join(steps)}; kept: {f'{len(kept)} nodes in float' if kept else 'no node in float'}")
    finally:
        prepared.unlink(missing_ok=True)
    art = _emulated(ctx, r, precision, [path],
                    lambda: EmulatedSession(path, cpu=ctx.target.qemu_cpu, precision=precision, like=ctx.fp32))
    art.notes += notes
    with engines.load(path, engine="onnxruntime") as x86:
        here = ctx.agreement(x86, "measured")
    art.notes.append(f"same INT8 file on this x86 machine: largest |output - FP32| {here.value:.3g} "
                     f"(vs {art.agreement.value:.3g} under ARM kernels)" if art.agreement else
                     f"same INT8 file on this x86 machine: largest |output - FP32| {here.value:.3g}")
    return art


def _arm_ncnn(ctx: Context, r: Runtime, precision: str) -> Artifact:
    from edgedeploy.engines.ncnn import convert
    from edgedeploy.targets.emulation import EmulatedSession

    d = ctx.out / f"{ctx.target.key}-ncnn-{precision}"
    if d.exists():
        shutil.rmtree(d)
    param, weights = convert(ctx.model.onnx_path(), [ctx.shape], d, fp16=precision == "fp16")
    return _emulated(ctx, r, precision, [param, weights],
                     lambda: EmulatedSession(param, engine="ncnn", cpu=ctx.target.qemu_cpu, precision=precision,
                                             like=ctx.fp32))


def _emulated(ctx: Context, r: Runtime, precision: str, files: list[Path], open_session) -> Artifact:
    from edgedeploy.targets import emulation

    art = Artifact(target=ctx.target.key, engine=r.engine, unit=r.unit, precision=precision,
                   files=[str(f.relative_to(ctx.out)) for f in files],
                   latency_ms=ctx.estimate("cpu", precision))
    why = emulation.unavailable()
    if why:
        art.notes.append(f"not verified on aarch64: {why}")
        return art
    with open_session() as s:
        art.agreement = ctx.agreement(s, "emulated")
        art.accuracy, art.reference = ctx.metric(s, "emulated", EMULATED_SAMPLES)
        art.notes += s.notes
    return art


_BUILDERS = {
    ("onnxruntime", "fp32"): _arm_onnxruntime,
    ("onnxruntime", "int8"): _arm_onnxruntime_int8,
    ("ncnn", "fp32"): _arm_ncnn,
    ("ncnn", "fp16"): _arm_ncnn,
    ("rknn", "int8"): accelerators.rknn_model,
    ("rknn", "fp16"): accelerators.rknn_model,
    ("tensorrt", "int8"): accelerators.tensorrt_qdq,
    ("tensorrt", "fp16"): accelerators.tensorrt_qdq,
}


def _choose_primary(arts: list[Artifact], budget: float = 0.01) -> None:
    """ARM CPU artefacts by :data:`ARM_RULE`; per accelerator, the least precise artefact whose accuracy
    drop is within ``budget`` (else the most accurate one)."""
    cpu = [a for a in arts if a.unit == "cpu" and a.files]
    if cpu:
        def score(a: Artifact) -> float:
            return a.accuracy.value if a.accuracy and a.accuracy.value is not None else -1.0

        best = max(score(a) for a in cpu)
        tied = [a for a in cpu if score(a) >= best - TIE]
        pick = next((a for a in tied if a.engine == "onnxruntime"), tied[0])
        pick.primary = True
        pick.notes.append(ARM_RULE)
    for unit in {a.unit for a in arts if a.unit != "cpu" and a.files}:
        built = sorted((a for a in arts if a.unit == unit and a.files), key=lambda a: PRECISION_RANK.get(a.precision, 9))
        within = [a for a in built if drop_of(a) is None or drop_of(a) <= budget]
        pick = within[0] if within else max(built, key=lambda a: -(drop_of(a) or 0.0))
        pick.primary = True
        pick.notes.append(f"primary {unit} artefact: the least precise one within the accuracy budget ({budget:.1%})"
                          + ("" if within else "; none is within it, so the most accurate"))


def for_deployment(cfg, out_dir: str | Path, *, shape: tuple[int, ...] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[Artifact]:
    """``deploy``'s hook: the artefacts of ``cfg.deployment.hardware`` (a target other than this machine) in
    ``out_dir/targets``, each accuracy checked against ``evaluation.max_accuracy_drop``. [] for local."""
    from edgedeploy.hardware.targets import TARGETS, ALIASES

    key = ALIASES.get(cfg.deployment.hardware, cfg.deployment.hardware)
    if key not in TARGETS:
        return []
    t = TARGETS[key]
    wanted = cfg.deployment.precisions()
    allowed = [p for p in wanted if p in t.precisions()]
    if not allowed:
        t.runtimes_for(wanted[0])  # raises: says which precisions the target's engines run
    arts = build_artifacts(t, load_model(cfg.model, cfg.params), None, Path(out_dir) / "targets", precisions=allowed,
                           shape=shape, max_accuracy_drop=cfg.evaluation.max_accuracy_drop, progress=progress)
    budget = cfg.evaluation.max_accuracy_drop
    for a in arts:
        drop = drop_of(a)
        if drop is not None:
            a.notes.append(f"accuracy {'within' if drop <= budget else 'OVER'} the budget: {drop:+.1%} drop "
                           f"({a.accuracy.how}) against max_accuracy_drop {budget:.1%}")
    return arts
