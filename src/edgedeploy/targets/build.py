"""The one call deploy makes: the artefacts a target runs, each checked as far as this machine can.

Every figure carries how it was obtained: ``measured`` (on this machine), ``emulated``
(qemu-aarch64, the same engine version's ARM kernels), ``simulated`` (the vendor's simulator),
``stand-in`` (another engine runs the same file here) or ``estimated`` (roofline from the
target's profile). Latency is never taken from emulation or a simulator.

Raspberry Pi 5 (and the other ARM CPUs) get both an ONNX Runtime and an ncnn artefact; the
rule that picks the primary one is stated in :data:`ARM_RULE`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.hardware.targets import Runtime, Target, target as get_target
from edgedeploy.ingest import Model, load_model

log = logging.getLogger(__name__)

ARM_RULE = ("primary ARM CPU artefact: the higher task metric under emulation; on a tie (within 0.5 point) "
            "onnxruntime, the reference runtime, because no ARM speed can be measured here")
EMULATED_SAMPLES = 4  # emulation runs ~50-100x slower than native: a few samples state the metric under ARM kernels
TIE = 0.005
PRECISION_RANK = {"int8": 0, "fp16": 1, "bf16": 1, "fp32": 2}


@dataclass
class Figure:
    """A number and how it was obtained ("measured", "emulated", "simulated", "stand-in", "estimated")."""

    value: float | None
    how: str
    detail: str = ""


@dataclass
class Artifact:
    """One file set for one runtime of a target, with its checked figures."""

    target: str
    engine: str
    unit: str
    precision: str
    files: list[str]
    accuracy: Figure | None = None  # task metric of this artefact
    reference: Figure | None = None  # the FP32 model's task metric on the same samples, here
    agreement: Figure | None = None  # largest output difference from FP32 on seeded inputs
    latency_ms: Figure | None = None
    primary: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


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
        ctx = _Context(t, m, fp32, shape, calib, out, task, samples, say, max_accuracy_drop)
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
    drop = _drop(a)
    return bool(a.files) and (drop is None or drop <= budget)


def _fall_back(ctx: _Context, arts: list[Artifact], runtimes: list[Runtime]) -> None:
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
        drop = _drop(a)
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


@dataclass
class _Context:
    target: Target
    model: Model
    fp32: object
    shape: tuple[int, ...]
    calib: object
    out: Path
    task: str | None
    samples: int | None
    say: Callable[[str], None]
    budget: float = 0.01

    def over_budget(self, art: Artifact) -> bool:
        """Whether an INT8 artefact's metric fell more than the budget (and calibration data can fix it)."""
        drop = _drop(art)
        return self.calib is not None and drop is not None and drop > self.budget

    def feeds(self, n: int = 2) -> list[dict]:
        return list(self.calib.feeds[:n]) if self.calib is not None else [self.fp32.example_feeds(self.shape)]

    def agreement(self, session, how: str) -> Figure:
        from edgedeploy.parity import compare

        worst, tol = 0.0, np.inf
        for f in self.feeds():
            d, t = compare(self.fp32.run(f), session.run(f))
            worst, tol = max(worst, d), min(tol, t)
        return Figure(worst, how, f"largest |output - FP32| over {len(self.feeds())} calibration inputs "
                                  f"(FP32 tolerance {tol:.2g})")

    def metric(self, session, how: str, n: int | None = None) -> tuple[Figure | None, Figure | None]:
        if not self.task or not self.model.zoo:
            return None, None
        from edgedeploy.evaluation.runner import evaluate

        n = self.samples or n
        got = evaluate(session, self.task, like=self.model.zoo.name, n=n)
        ref = evaluate(self.fp32, self.task, like=self.model.zoo.name, n=n)
        return (Figure(got.value, how, f"{got.metric} on {got.n} samples ({got.data})"),
                Figure(ref.value, "measured", f"FP32 {ref.metric} on ONNX Runtime here, same samples"))

    def estimate(self, unit: str, precision: str) -> Figure:
        from edgedeploy.hardware.estimate import estimate

        e = estimate(self.model, self.target.device, shape=self.shape, precision=precision, unit=unit)
        return Figure(e.latency_ms, "estimated", f"{e.latency_low_ms:.1f}-{e.latency_high_ms:.1f} ms band; {e.method}")


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


def _arm_onnxruntime(ctx: _Context, r: Runtime, precision: str) -> Artifact:
    from edgedeploy.targets.emulation import EmulatedSession

    d = ctx.out / f"{ctx.target.key}-onnxruntime-{precision}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.onnx"
    shutil.copyfile(ctx.model.onnx_path(), path)
    return _emulated(ctx, r, precision, [path], lambda: EmulatedSession(path, cpu=ctx.target.qemu_cpu, like=ctx.fp32))


def _arm_onnxruntime_int8(ctx: _Context, r: Runtime, precision: str) -> Artifact:
    """ORT's U8S8 QDQ recipe (:mod:`edgedeploy.optimize.quantize_ort`), checked with ARM's INT8 kernels;
    the same file's agreement on x86 is stated beside it (INT8 rounding differs between the two)."""
    from edgedeploy.optimize.quantize_ort import quantize_static
    from edgedeploy.targets.emulation import EmulatedSession

    if ctx.calib is None:
        raise UserError("INT8 for the ARM CPU needs calibration data; give calib or allow fp32")
    d = ctx.out / f"{ctx.target.key}-onnxruntime-int8"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.int8.onnx"
    quantize_static(ctx.model.onnx_path(), path, ctx.calib)
    art = _emulated(ctx, r, precision, [path],
                    lambda: EmulatedSession(path, cpu=ctx.target.qemu_cpu, precision=precision, like=ctx.fp32))
    with engines.load(path, engine="onnxruntime") as x86:
        here = ctx.agreement(x86, "measured")
    art.notes.append(f"same INT8 file on this x86 machine: largest |output - FP32| {here.value:.3g} "
                     f"(vs {art.agreement.value:.3g} under ARM kernels)" if art.agreement else
                     f"same INT8 file on this x86 machine: largest |output - FP32| {here.value:.3g}")
    return art


def _arm_ncnn(ctx: _Context, r: Runtime, precision: str) -> Artifact:
    from edgedeploy.engines.ncnn import convert
    from edgedeploy.targets.emulation import EmulatedSession

    d = ctx.out / f"{ctx.target.key}-ncnn-{precision}"
    if d.exists():
        shutil.rmtree(d)
    param, weights = convert(ctx.model.onnx_path(), [ctx.shape], d, fp16=precision == "fp16")
    return _emulated(ctx, r, precision, [param, weights],
                     lambda: EmulatedSession(param, engine="ncnn", cpu=ctx.target.qemu_cpu, precision=precision,
                                             like=ctx.fp32))


def _emulated(ctx: _Context, r: Runtime, precision: str, files: list[Path], open_session) -> Artifact:
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


RKNN_ALGORITHMS = ("normal", "kl_divergence")  # min/max first; KL clips outliers (PicoDet: hmean 0.16 -> 0.82)


def _rknn(ctx: _Context, r: Runtime, precision: str) -> Artifact:
    """INT8: each of :data:`RKNN_ALGORITHMS` is built and scored on the simulator; the best task metric
    (else the best output agreement) ships, and the others are stated."""
    from edgedeploy.targets.rknn import RknnSession

    path = ctx.out / f"{ctx.target.key}-rknn-{precision}" / "model.rknn"
    tried: list[tuple[float, Artifact, str]] = []
    for algorithm in RKNN_ALGORITHMS if precision == "int8" else ("normal",):
        candidate = path.with_name(f"model-{algorithm}.rknn")
        with RknnSession(ctx.model.onnx_path(), candidate, shapes=[ctx.shape], like=ctx.fp32, dtype=precision,
                         calib=ctx.calib.feeds if ctx.calib is not None and precision == "int8" else (),
                         algorithm=algorithm) as s:
            art = Artifact(target=ctx.target.key, engine=r.engine, unit=r.unit, precision=precision,
                           files=[str(path.relative_to(ctx.out))], agreement=ctx.agreement(s, "simulated"),
                           latency_ms=ctx.estimate("npu", precision),
                           notes=[*s.notes, f"quantized_algorithm={algorithm}"] if precision == "int8" else list(s.notes))
            art.accuracy, art.reference = ctx.metric(s, "simulated")
        score = art.accuracy.value if art.accuracy else -art.agreement.value
        tried.append((score, art, algorithm))
        if art.accuracy and art.reference and art.accuracy.value >= art.reference.value:
            break  # nothing to gain from another algorithm
    score, best, algorithm = max(tried, key=lambda t: t[0])
    for _, other, name in tried:
        if other is not best:
            best.notes.append(f"also tried quantized_algorithm={name}: "
                              + (f"{other.accuracy.value:.3f}" if other.accuracy else f"max diff {other.agreement.value:.3g}"))
        if name != algorithm:
            path.with_name(f"model-{name}.rknn").unlink(missing_ok=True)
    path.with_name(f"model-{algorithm}.rknn").replace(path)
    if precision == "int8" and ctx.over_budget(best):
        _rknn_keep_float(ctx, best, path, algorithm)
    return best


def _rknn_keep_float(ctx: _Context, art: Artifact, path: Path, algorithm: str) -> None:
    """The NPU INT8 model over budget: hybrid quantization keeps the sensitive nodes in float. The
    toolkit reports no per-node error to us, so the nodes are ranked on ONNX Runtime's QDQ of the
    same model (:mod:`edgedeploy.optimize.quantize_ort`), then scored on the simulator."""
    import onnx

    from edgedeploy.optimize.quantize_ort import quantize_static
    from edgedeploy.targets.rknn import RknnSession
    from edgedeploy.targets.sensitive import keep_float

    src = ctx.model.onnx_path()
    graph = onnx.load(str(src), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    tensors = {n.name: ([i for i in n.input if i and i not in weights] or list(n.input))[0:1] + [n.output[0]]
               for n in graph.node}
    hybrid = path.with_name("model-hybrid.rknn")
    scored: dict[tuple, tuple] = {}

    def rebuild(exclude: list[str]) -> float:
        subgraphs = [tensors[name] for name in exclude if name in tensors]
        with RknnSession(src, hybrid, shapes=[ctx.shape], like=ctx.fp32, dtype="int8", calib=ctx.calib.feeds,
                         algorithm=algorithm, float_subgraphs=subgraphs) as s:
            acc, _ = ctx.metric(s, "simulated")
            scored[tuple(exclude)] = (acc.value, ctx.agreement(s, "simulated"), list(s.notes))
        return acc.value

    ranking = path.with_name("ranking.qdq.onnx")
    quantize_static(src, ranking, ctx.calib)
    first = art.accuracy.value
    try:
        outcome = keep_float(src, ranking, list(ctx.calib.feeds), quantize=rebuild, first_metric=first,
                             reference=art.reference.value, budget=ctx.budget, say=ctx.say)
    except UserError as exc:  # the toolkit refused the float subgraphs: the plain INT8 model stays, said so
        hybrid.unlink(missing_ok=True)
        art.notes.append(f"hybrid quantization not applied: {exc}")
        return
    finally:
        ranking.unlink(missing_ok=True)
    if outcome.float_nodes:
        value, art.agreement, notes = scored[tuple(n["name"] for n in outcome.float_nodes)]
        art.accuracy = Figure(value, "simulated", art.accuracy.detail)
        hybrid.replace(path)
        art.notes.append("hybrid quantization (RKNN-Toolkit2 hybrid_quantization_step1/2, custom_hybrid)")
    hybrid.unlink(missing_ok=True)
    art.notes.append(outcome.note("float on the NPU, ranked on ORT's QDQ") + f"; before: {first:.3f}")


def _tensorrt(ctx: _Context, r: Runtime, precision: str) -> Artifact:
    from edgedeploy.targets import tensorrt

    d = ctx.out / f"{ctx.target.key}-tensorrt-{precision}"
    shapes = {ctx.fp32.inputs[0].name: list(ctx.shape)}
    files = tensorrt.write(ctx.model.onnx_path(), d, shapes=shapes, precision=precision, calib=ctx.calib)
    art = Artifact(target=ctx.target.key, engine=r.engine, unit=r.unit, precision=precision,
                   files=[str(f.relative_to(ctx.out)) for f in files], latency_ms=ctx.estimate("gpu", precision),
                   notes=["stand-in: the ONNX file's accuracy is ONNX Runtime's (CPU) here; "
                          f"TensorRT builds and runs it on the {ctx.target.device.name} ({tensorrt.gpu_unavailable() or 'GPU here'})"])
    with engines.load(files[0], engine="onnxruntime") as s:
        art.agreement = ctx.agreement(s, "stand-in")
        art.accuracy, art.reference = ctx.metric(s, "stand-in")
    if precision == "int8" and ctx.over_budget(art):
        _tensorrt_keep_float(ctx, art, d, shapes, files[0])
    return art


TRT_FRONT_SHARES = (0.0, 0.125, 0.25, 0.4)  # share of Convs kept in float after the head: PicoDet needs 0.4


def _tensorrt_keep_float(ctx: _Context, art: Artifact, d: Path, shapes: dict, qdq: Path) -> None:
    """The QDQ model over budget: the head and the first Convs lose their Q/DQ (TensorRT runs them in
    FP16), a growing share of :data:`TRT_FRONT_SHARES` until the stand-in metric is within the budget.
    The best one tried stays (the caller refuses to ship it when it is still over)."""
    from edgedeploy.targets import tensorrt

    prepared = tensorrt.prepare(ctx.model.onnx_path(), d / ".ranked.float.onnx")
    n = tensorrt.conv_count(prepared)
    first, steps, best = art.accuracy.value, [], (art.accuracy.value, None)
    try:
        for share in TRT_FRONT_SHARES:
            exclude = tensorrt.float_front(prepared, round(share * n))
            ctx.say(f"INT8: head + first {round(share * n)} of {n} Convs in float")
            tensorrt.write(ctx.model.onnx_path(), d, shapes=shapes, precision="int8", calib=ctx.calib, exclude=exclude)
            with engines.load(qdq, engine="onnxruntime") as s:
                acc, _ = ctx.metric(s, "stand-in")
            steps.append(f"head + {round(share * n)} Convs in float: {acc.value:.3f}")
            if acc.value > best[0]:
                best = (acc.value, exclude)
            if art.reference.value - acc.value <= ctx.budget:
                break
        if best[1] is not None and best[1] != exclude:
            tensorrt.write(ctx.model.onnx_path(), d, shapes=shapes, precision="int8", calib=ctx.calib, exclude=best[1])
    finally:
        prepared.unlink(missing_ok=True)
    if best[1] is not None:
        with engines.load(qdq, engine="onnxruntime") as s:
            art.agreement = ctx.agreement(s, "stand-in")
            art.accuracy, art.reference = ctx.metric(s, "stand-in")
    kept = f"{len(best[1])} nodes in float (no Q/DQ: TensorRT runs them in FP16)" if best[1] else "no node in float"
    art.notes.append(f"INT8 over budget at first ({first:.3f}); tried {'; '.join(steps)}; kept: {kept}")


_BUILDERS = {
    ("onnxruntime", "fp32"): _arm_onnxruntime,
    ("onnxruntime", "int8"): _arm_onnxruntime_int8,
    ("ncnn", "fp32"): _arm_ncnn,
    ("ncnn", "fp16"): _arm_ncnn,
    ("rknn", "int8"): _rknn,
    ("rknn", "fp16"): _rknn,
    ("tensorrt", "int8"): _tensorrt,
    ("tensorrt", "fp16"): _tensorrt,
}


def _drop(a: Artifact) -> float | None:
    if a.accuracy and a.reference and a.accuracy.value is not None and a.reference.value is not None:
        return a.reference.value - a.accuracy.value
    return None


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
        within = [a for a in built if _drop(a) is None or _drop(a) <= budget]
        pick = within[0] if within else max(built, key=lambda a: -(_drop(a) or 0.0))
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
        drop = _drop(a)
        if drop is not None:
            a.notes.append(f"accuracy {'within' if drop <= budget else 'OVER'} the budget: {drop:+.1%} drop "
                           f"({a.accuracy.how}) against max_accuracy_drop {budget:.1%}")
    return arts
