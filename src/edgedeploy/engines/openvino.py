"""OpenVINO: CPU (and Intel GPU where present); reads ONNX and, natively, Paddle models."""

from __future__ import annotations

import functools
import logging

import numpy as np
import openvino as ov

from edgedeploy.engines.base import EngineOptions, Session, TensorSpec
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


def open(model, options: EngineOptions) -> Session:  # noqa: A001 - the engine module's loader
    """The model on OpenVINO as edgedeploy tunes it (latency hint, explicit precision, threads, streams)."""
    device = "GPU" if options.device == "gpu" else "CPU"
    compiled = _compile(_core(), read(model), device, compile_config(options), model)
    session = OvSession(compiled, options.device)
    if not options.graph_optimization:
        session.notes.append("openvino always optimises the graph when compiling; graph_optimization=False has no effect")
    return session


def open_default(model) -> Session:
    """The anchor: ``openvino.Core().compile_model(path, "CPU")``, no hints — so OpenVINO's own precision
    choice (BF16 on CPUs with AVX-512 BF16 or AMX): the default users get."""
    core = ov.Core()
    compiled = _compile(core, str(model.path) if model.format == "onnx" else read(model), "CPU", {}, model)
    session = OvSession(compiled, "cpu")
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    session.notes.append(f"OpenVINO default inference precision here: {hint.to_string() if hasattr(hint, 'to_string') else hint}")
    return session
