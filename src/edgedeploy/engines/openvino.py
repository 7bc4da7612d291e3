"""OpenVINO: CPU (and Intel GPU where present); reads ONNX and, natively, Paddle models."""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import openvino as ov

from edgedeploy.engines.base import EngineOptions, Session, TensorSpec, fixed_shape
from edgedeploy.engines.profiling import WARMUP, LayerTime, precision_name
from edgedeploy.errors import ConversionError, UserError

log = logging.getLogger(__name__)


@functools.cache
def _core() -> ov.Core:
    """One Core per process: it owns the plugins and their thread pools, shared by all models."""
    return ov.Core()


def gpu_available() -> bool:
    return any(d.startswith("GPU") for d in _core().available_devices)


_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def compile_config(options: EngineOptions) -> dict:
    config: dict = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": _PRECISION[options.precision]}
    if options.threads:
        config["INFERENCE_NUM_THREADS"] = options.threads
    if options.memory_optimization:
        config["NUM_STREAMS"] = 1
    return config


def _spec(port) -> TensorSpec:
    ps = port.get_partial_shape()
    shape = tuple(d.get_length() if d.is_static else None for d in ps) if ps.rank.is_static else ()
    names = port.get_names()
    return TensorSpec(sorted(names)[0] if names else port.get_any_name(), np.dtype(port.get_element_type().to_dtype()), shape)


def _settings(compiled: ov.CompiledModel) -> dict:
    out = {}
    for key in ("PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS"):
        try:
            out[key] = str(compiled.get_property(key))
        except RuntimeError:  # a plugin that does not report this property
            pass
    return out


class OvSession(Session):
    def __init__(self, compiled: ov.CompiledModel, device: str):
        super().__init__(engine="openvino", inputs=[_spec(p) for p in compiled.inputs],
                         outputs=[_spec(p) for p in compiled.outputs], device=device, settings=_settings(compiled))
        self._compiled = compiled
        self._request = compiled.create_infer_request()

    def _run(self, feeds):
        try:
            result = self._request.infer(feeds, share_inputs=True)
        except RuntimeError as exc:
            raise UserError(f"openvino could not run the model on these inputs: {str(exc).splitlines()[0][:300]}") from None
        return [np.array(result[port], copy=True) for port in self._compiled.outputs]

    def clone_instance(self):
        # A new infer request on the same CompiledModel: its own buffers, the same weights.
        twin = OvSession(self._compiled, self.device)
        twin.notes = list(self.notes)
        return twin

    def _release(self):
        self._request = None
        self._compiled = None


def read(model) -> ov.Model:
    """Read the model: Paddle models natively when OpenVINO's Paddle front end takes them, else ONNX."""
    core = _core()
    if model.format == "paddle":
        try:
            return core.read_model(str(model.path), str(model.params))
        except RuntimeError as exc:
            log.info("OpenVINO's Paddle front end could not read %s (%s); converting to ONNX",
                     model.name, str(exc).splitlines()[0][:120])
    path = model.onnx_path()
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        raise ConversionError(f"openvino could not read {path.name}: {str(exc).splitlines()[0][:300]}") from None


def _compile(core: ov.Core, what, device: str, config: dict, model) -> ov.CompiledModel:
    try:
        return core.compile_model(what, device, config)
    except RuntimeError as exc:  # an operator or shape the plugin cannot take: the model's, not ours
        raise UserError(f"openvino could not compile {model.name} for {device}: {str(exc).strip().splitlines()[0][:300]}") from None


def open(model, options: EngineOptions, *, extra: dict | None = None) -> Session:  # noqa: A001 - the loader
    """The model on OpenVINO as edgedeploy tunes it (latency hint, explicit precision, threads, streams);
    ``extra``: more compile properties (e.g. ``PERF_COUNT`` for :func:`profile`)."""
    device = "GPU" if options.device == "gpu" else "CPU"
    ov_model = read(model)
    shape = fixed_shape([_spec(p) for p in ov_model.inputs], options)
    if shape is not None:
        ov_model.reshape({ov_model.inputs[0]: ov.PartialShape(list(shape))})
    compiled = _compile(_core(), ov_model, device, {**compile_config(options), **(extra or {})}, model)
    session = OvSession(compiled, options.device)
    if not options.graph_optimization:
        session.notes.append("openvino always optimises the graph when compiling; graph_optimization=False has no effect")
    return session


def open_default(model, *, extra: dict | None = None) -> Session:
    """The anchor: ``openvino.Core().compile_model(path, "CPU")``, no hints — so OpenVINO's own precision
    choice (BF16 on CPUs with AVX-512 BF16 or AMX): the default users get. ``extra``: as in :func:`open`."""
    core = ov.Core()
    compiled = _compile(core, str(model.path) if model.format == "onnx" else read(model), "CPU", extra or {}, model)
    session = OvSession(compiled, "cpu")
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    session.notes.append(f"OpenVINO default inference precision here: {hint.to_string() if hasattr(hint, 'to_string') else hint}")
    return session


def _layers(request) -> dict[str, LayerTime]:
    out = {}
    for info in request.profiling_info:
        if info.status != info.Status.EXECUTED:
            continue
        # exec_type names the kernel and ends with the precision it ran in: brgconv_avx512_1x1_I8, ref_any_f32;
        # 1x1 convolutions are told apart (they are GEMMs, where INT8/BF16 dot products pay most)
        kernel = info.exec_type
        op = f"{info.node_type} 1x1" if "_1x1_" in kernel else info.node_type
        out[info.node_name] = LayerTime(info.node_name, op, kernel, precision_name(kernel.rsplit("_", 1)[-1]),
                                        info.real_time.total_seconds() * 1000)
    return out


def profile(model, options: EngineOptions, feeds: dict | None, runs: int, untuned: bool,
            shape: tuple[int, ...] | None = None) -> list[LayerTime]:
    """Per-layer times from OpenVINO's own counters (``PERF_COUNT``), mean of ``runs`` runs per layer, on the
    model compiled as :func:`open` (or, ``untuned``, as :func:`open_default`) does, plus the counters.

    The CPU plugin reports each layer's *running mean since compiling* (microseconds): the mean of the
    profiled runs alone is what the counters add between the end of the warm-up and the end."""
    counters = {"PERF_COUNT": True}
    session = open_default(model, extra=counters) if untuned else open(model, options, extra=counters)
    feeds = session.check_feeds(feeds if feeds is not None else session.example_feeds(shape))
    request = session._request
    for _ in range(WARMUP):
        request.infer(feeds, share_inputs=True)
    warm = _layers(request)
    for _ in range(runs):
        request.infer(feeds, share_inputs=True)
    done = _layers(request)
    session.release()
    total = WARMUP + runs
    return [dataclasses.replace(x, ms=max(0.0, (total * x.ms - WARMUP * warm[k].ms) / runs) if k in warm else x.ms)
            for k, x in done.items()]
