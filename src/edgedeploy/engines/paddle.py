"""Paddle Inference: Paddle-format models on CPU (oneDNN/MKLDNN) or a CUDA GPU."""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ logging is chatty at INFO
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "No ccache found": about building C++ extensions, which we never do
    import paddle
    import paddle.inference as pi

from edgedeploy.engines.base import EngineOptions, Session, TensorSpec  # noqa: E402
from edgedeploy.errors import UserError  # noqa: E402

log = logging.getLogger(__name__)

_PROTO_DTYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT64": np.int64,
                 "INT32": np.int32, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


def gpu_available() -> bool:
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def config(model, options: EngineOptions) -> pi.Config:
    c = pi.Config(str(model.path), str(model.params))
    if options.device == "gpu":
        c.enable_use_gpu(options.gpu_memory_mb, options.device_id)
    else:
        c.disable_gpu()
        if options.mkldnn:
            c.enable_mkldnn()
    if options.threads:
        c.set_cpu_math_library_num_threads(options.threads)
    c.switch_ir_optim(options.graph_optimization)
    if options.memory_optimization:
        c.enable_memory_optim()
    c.disable_glog_info()
    return c


def declared_specs(model) -> dict[str, TensorSpec]:
    """Input/output shapes and dtypes as declared in a ``.pdmodel`` program (PIR ``.json``: unknown)."""
    if model.path.suffix != ".pdmodel":
        return {}
    from paddle.base.proto import framework_pb2

    prog = framework_pb2.ProgramDesc()
    prog.ParseFromString(model.path.read_bytes())
    block = prog.blocks[0]
    names = [op.outputs[0].arguments[0] for op in block.ops if op.type == "feed"]
    names += [op.inputs[0].arguments[0] for op in block.ops if op.type == "fetch"]
    out = {}
    for var in block.vars:
        if var.name in names:
            t = var.type.dense_tensor.tensor
            dtype = _PROTO_DTYPES.get(framework_pb2.VarType.Type.Name(t.data_type), np.float32)
            out[var.name] = TensorSpec(var.name, np.dtype(dtype), tuple(d if d > 0 else None for d in t.dims))
    return out


class PaddleSession(Session):
    def __init__(self, predictor, specs: dict[str, TensorSpec], device: str):
        def spec(name: str) -> TensorSpec:
            return specs.get(name) or TensorSpec(name, np.dtype(np.float32), ())

        super().__init__(engine="paddle", inputs=[spec(n) for n in predictor.get_input_names()],
                         outputs=[spec(n) for n in predictor.get_output_names()], device=device)
        self._predictor = predictor

    def check_feeds(self, feeds):
        # PIR (.json) programs do not declare shapes we can read ahead: check names and dtypes only.
        if any(s.shape == () for s in self.inputs):
            self.inputs = [TensorSpec(s.name, s.dtype, (None,) * np.ndim(feeds.get(s.name, ())))
                           if s.shape == () else s for s in self.inputs]
        return super().check_feeds(feeds)

    def _run(self, feeds):
        p = self._predictor
        for name, arr in feeds.items():
            handle = p.get_input_handle(name)
            handle.reshape(list(arr.shape))
            handle.copy_from_cpu(arr)
        try:
            p.run()
        except (ValueError, RuntimeError, OSError) as exc:  # Paddle's errors for inputs the program cannot take
            raise UserError(f"paddle could not run the model on these inputs: {str(exc).strip().splitlines()[-1][:300]}") from None
        return [p.get_output_handle(s.name).copy_to_cpu() for s in self.outputs]

    def clone_instance(self):
        # Predictor.clone() shares the loaded parameters; each clone has its own scope for activations.
        specs = {s.name: s for s in (*self.inputs, *self.outputs)}
        twin = PaddleSession(self._predictor.clone(), specs, self.device)
        twin.notes = list(self.notes)
        return twin

    def _release(self):
        if self._predictor is not None:
            self._predictor.clear_intermediate_tensor()
            self._predictor.try_shrink_memory()
        self._predictor = None


def _settings(c: pi.Config) -> dict:
    # Paddle's Config reads back these; enable_memory_optim has no getter
    return {"mkldnn": c.mkldnn_enabled(), "ir_optim": c.ir_optim(),
            "cpu_math_threads": c.cpu_math_library_num_threads(), "gpu": c.use_gpu()}


def _predictor(model, c: pi.Config):
    if model.format != "paddle":
        raise UserError(f"paddle runs Paddle-format models only; {model.name} is {model.format}")
    try:
        return pi.create_predictor(c)
    except (ValueError, RuntimeError, OSError) as exc:  # Paddle's load errors: a model it cannot read
        raise UserError(f"paddle could not load {model.path.name}: {str(exc).strip().splitlines()[-1][:300]}") from None


def open(model, options: EngineOptions) -> Session:  # noqa: A001 - the engine module's loader
    """The model on Paddle Inference as edgedeploy tunes it (oneDNN, IR optimisation, memory optimisation, threads)."""
    c = config(model, options)
    session = PaddleSession(_predictor(model, c), declared_specs(model), options.device)
    session.settings = _settings(c)
    return session


def open_default(model) -> Session:
    """The anchor: ``Config(model, params)`` + ``create_predictor`` (Paddle 3.x defaults: oneDNN on,
    IR optimisation on, one CPU math thread)."""
    if model.format != "paddle":
        raise UserError(f"paddle runs Paddle-format models only; {model.name} is {model.format}")
    c = pi.Config(str(model.path), str(model.params))
    session = PaddleSession(_predictor(model, c), declared_specs(model), "cpu")
    session.settings = _settings(c)
    session.notes.append(f"Paddle defaults: oneDNN {'on' if c.mkldnn_enabled() else 'off'}, "
                         f"{c.cpu_math_library_num_threads()} CPU math thread(s)")
    return session
