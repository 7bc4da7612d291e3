"""The accelerator builders: RK3588 NPU (``.rknn``, RKNN-Toolkit2's simulator) and Jetson GPU (QDQ ONNX +
TensorRT settings, ONNX Runtime as the stand-in). Each returns an :class:`~edgedeploy.targets.artifact.Artifact`
with its figures; an INT8 artefact over the accuracy budget first tries keeping nodes in float."""

from __future__ import annotations

from pathlib import Path

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.hardware.targets import Runtime
from edgedeploy.targets.artifact import Artifact, Context, Figure


RKNN_ALGORITHMS = ("normal", "kl_divergence")  # min/max first; KL clips outliers (PicoDet: hmean 0.16 -> 0.82)


def rknn_model(ctx: Context, r: Runtime, precision: str) -> Artifact:
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


def _rknn_keep_float(ctx: Context, art: Artifact, path: Path, algorithm: str) -> None:
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


def tensorrt_qdq(ctx: Context, r: Runtime, precision: str) -> Artifact:
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


def _tensorrt_keep_float(ctx: Context, art: Artifact, d: Path, shapes: dict, qdq: Path) -> None:
    """The QDQ model over budget: the head and the first Convs lose their Q/DQ (TensorRT runs them in
    FP16), by :func:`edgedeploy.targets.sensitive.keep_front_float` on the stand-in metric. The best one
    tried stays (the caller refuses to ship it when it is still over)."""
    from edgedeploy.targets import sensitive, tensorrt

    def quantize(exclude: list[str]) -> float:
        tensorrt.write(ctx.model.onnx_path(), d, shapes=shapes, precision="int8", calib=ctx.calib, exclude=exclude)
        with engines.load(qdq, engine="onnxruntime") as s:
            return ctx.metric(s, "stand-in")[0].value

    first = art.accuracy.value
    prepared = tensorrt.prepare(ctx.model.onnx_path(), d / ".ranked.float.onnx")
    try:
        kept, steps = sensitive.keep_front_float(prepared, quantize=quantize, first_metric=first,
                                                 reference=art.reference.value, budget=ctx.budget, say=ctx.say)
    finally:
        prepared.unlink(missing_ok=True)
    if kept is not None:
        with engines.load(qdq, engine="onnxruntime") as s:
            art.agreement = ctx.agreement(s, "stand-in")
            art.accuracy, art.reference = ctx.metric(s, "stand-in")
    what = f"{len(kept)} nodes in float (no Q/DQ: TensorRT runs them in FP16)" if kept else "no node in float"
    art.notes.append(f"INT8 over budget at first ({first:.3f}); tried {'; '.join(steps)}; kept: {what}")
