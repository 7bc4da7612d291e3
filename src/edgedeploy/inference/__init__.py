"""The Paddle-Inference-style Predictor API of the seed, on any engine.

Code written for ``paddle.inference`` runs with only its import changed::

    from edgedeploy import inference
    config = inference.Config("model.pdmodel", "model.pdiparams")
    config.enable_use_gpu(100, 0)          # no GPU here: warns once, runs on the CPU
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.copy_from_cpu(x)
    predictor.run()
    y = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

The engine is ``config.set_engine(name)``, else ``$EDGEDEPLOY_ENGINE``, else ``auto`` (Paddle
Inference for Paddle models, ONNX Runtime for ONNX). Calls that cannot take effect here (TensorRT
without an NVIDIA GPU, BF16 on an engine without a BF16 path, the engines' optimised-graph cache)
warn once, in one line, saying why and what does the job instead — as Paddle does for a missing GPU.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgedeploy import engines
from edgedeploy.engines import EngineOptions, Session
from edgedeploy.engines.base import warn_once
from edgedeploy.errors import UserError
from edgedeploy.inference.paddle_api import PrecisionType, PredictorPool, get_version, tensorrt_note

__all__ = ["Config", "Predictor", "PrecisionType", "PredictorPool", "Tensor", "create_predictor", "get_version"]

ENGINE_ENV = "EDGEDEPLOY_ENGINE"


class Config:
    """Where the model is and how to run it. ``Config(dir)``, ``Config(model_file, params_file)``
    or ``Config("model.onnx")``; ``params`` may be omitted when it sits beside the model."""

    def __init__(self, model: str | os.PathLike | None = None, params: str | os.PathLike | None = None):
        self._model = model
        self._params = params
        self._options = EngineOptions()
        self._engine: str | None = None
        self._buffer_dir: tempfile.TemporaryDirectory | None = None  # set_model_buffer's private copy
        self._tensorrt = False
        self._trt_precision = PrecisionType.Float32

    # --- model -----------------------------------------------------------------------------
    def set_model(self, model: str | os.PathLike, params: str | os.PathLike | None = None) -> None:
        self._model, self._params = model, params

    def set_model_buffer(self, prog_buffer, prog_buffer_size: int, params_buffer=b"",
                         params_buffer_size: int = 0) -> None:
        """Load the model from memory (Paddle program + parameters, or ONNX bytes with no
        parameters). The bytes go to a private directory (0700) that lives as long as this Config:
        every engine reads files."""
        prog, params = _as_bytes(prog_buffer)[:int(prog_buffer_size)], _as_bytes(params_buffer)[:int(params_buffer_size)]
        if not prog:
            raise UserError("set_model_buffer: the program buffer is empty; pass the model file's bytes and their size")
        self._buffer_dir = tempfile.TemporaryDirectory(prefix="edgedeploy-buffer-")
        root = Path(self._buffer_dir.name)
        if params or not _is_onnx(prog):
            (root / "model.pdmodel").write_bytes(prog)
            (root / "model.pdiparams").write_bytes(params)
            self.set_model(root / "model.pdmodel", root / "model.pdiparams")
        else:
            (root / "model.onnx").write_bytes(prog)
            self.set_model(root / "model.onnx")

    def model_from_memory(self) -> bool:
        return self._buffer_dir is not None

    def model_dir(self) -> str:
        return str(self._model or "")

    def prog_file(self) -> str:
        return str(self._model or "")

    def params_file(self) -> str:
        return str(self._params or "")

    # --- engine and device -----------------------------------------------------------------
    def set_engine(self, name: str) -> None:
        """Choose the engine: ``onnxruntime``, ``openvino``, ``paddle`` or ``auto``."""
        if name != "auto":
            engines.spec(name)
        self._engine = name

    def engine(self) -> str:
        return self._engine or os.environ.get(ENGINE_ENV) or "auto"

    def enable_use_gpu(self, memory_pool_init_size_mb: int = 100, device_id: int = 0) -> None:
        """Run on GPU ``device_id``; where the engine sees no GPU it warns once and uses the CPU."""
        self._set(device="gpu", gpu_memory_mb=int(memory_pool_init_size_mb), device_id=int(device_id))

    def enable_tensorrt_engine(self, workspace_size: int = 1 << 30, max_batch_size: int = 1,
                               min_subgraph_size: int = 3, precision_mode: PrecisionType = PrecisionType.Float32,
                               use_static: bool = False, use_calib_mode: bool = True, **_ignored) -> None:
        """Run through TensorRT: ONNX Runtime's TensorRT provider where an NVIDIA GPU and the provider
        are present. Without them (as Paddle does) it warns once and stays off: TensorRT needs the
        GPU; for a Jetson, ``edgedeploy deploy`` with ``hardware: jetson-orin-nano`` writes the QDQ model and
        the TensorRT build settings the box builds its engine from."""
        why_not = tensorrt_note(self.use_gpu())
        if why_not:
            warn_once("inference-tensorrt", why_not)
            return
        self._tensorrt, self._trt_precision = True, PrecisionType(precision_mode)
        self._engine = "onnxruntime"  # its TensorRT provider comes first on a GPU (engines.onnxruntime.providers)

    def tensorrt_engine_enabled(self) -> bool:
        return self._tensorrt

    def tensorrt_precision_mode(self) -> PrecisionType:
        return self._trt_precision

    def disable_gpu(self) -> None:
        self._set(device="cpu")

    def use_gpu(self) -> bool:
        return self._options.device == "gpu"

    def gpu_device_id(self) -> int:
        return self._options.device_id

    # --- optimisation ----------------------------------------------------------------------
    def enable_memory_optim(self, x: bool = True) -> None:
        self._set(memory_optimization=bool(x))

    def switch_ir_optim(self, x: bool = True) -> None:
        self._set(graph_optimization=bool(x))

    def ir_optim(self) -> bool:
        return self._options.graph_optimization

    def set_cpu_math_library_num_threads(self, n: int) -> None:
        if int(n) < 1:
            raise UserError(f"set_cpu_math_library_num_threads({n}): expected a thread count of at least 1")
        self._set(threads=int(n))

    def cpu_math_library_num_threads(self) -> int:
        return self._options.threads or 1

    def enable_mkldnn(self) -> None:
        self._set(mkldnn=True)

    def disable_mkldnn(self) -> None:
        self._set(mkldnn=False)

    def mkldnn_enabled(self) -> bool:
        return self._options.mkldnn

    def enable_mkldnn_bfloat16(self) -> None:
        """BF16 arithmetic on the CPU: OpenVINO's BF16 inference precision (AVX-512 BF16/AMX CPUs).
        Other engines have no BF16 path; :func:`create_predictor` warns once and runs FP32."""
        self._set(precision="bf16")

    def mkldnn_bfloat16_enabled(self) -> bool:
        return self._options.precision == "bf16"

    def set_optim_cache_dir(self, opt_cache_dir: str | os.PathLike) -> None:
        """Accepted; warns once: edgedeploy caches its own conversions (Paddle→ONNX, ONNX→ncnn)
        under ``$EDGEDEPLOY_CACHE``, and the engines' optimised-graph caches are not exposed."""
        warn_once("inference-optim-cache", f"set_optim_cache_dir({str(opt_cache_dir)!r}) has no effect: edgedeploy "
                  "caches its conversions under $EDGEDEPLOY_CACHE; the engines' optimised-graph caches are not exposed")

    def disable_glog_info(self) -> None:
        """Accepted for compatibility: edgedeploy logs through ``logging``."""

    def options(self) -> EngineOptions:
        return self._options

    def summary(self) -> str:
        o = self._options
        return (f"model={self._model} params={self._params or '-'} engine={self.engine()} device={o.device} "
                f"threads={o.threads or 'default'} ir_optim={o.graph_optimization} memory_optim={o.memory_optimization}")

    def _set(self, **changes) -> None:
        self._options = replace(self._options, **changes)


class Tensor:
    """An input or output handle of a :class:`Predictor`."""

    def __init__(self, predictor: Predictor, name: str, is_input: bool):
        self._predictor = predictor
        self._name = name
        self._is_input = is_input
        self._shape: list[int] | None = None

    def name(self) -> str:
        return self._name

    def reshape(self, shape) -> None:
        """Declare the input's shape (the array given to :meth:`copy_from_cpu` must match it)."""
        self._shape = [int(d) for d in shape]

    def copy_from_cpu(self, data: np.ndarray) -> None:
        if not self._is_input:
            raise UserError(f"{self._name!r} is an output; copy_from_cpu works on input handles")
        data = np.asarray(data)
        if self._shape is not None and list(data.shape) != self._shape:
            raise UserError(f"input {self._name!r}: reshape() said {self._shape} but the array is {list(data.shape)}")
        self._predictor._feeds[self._name] = data

    def copy_to_cpu(self) -> np.ndarray:
        outputs = self._predictor._outputs
        if self._is_input:
            return self._predictor._feeds[self._name].copy()
        if outputs is None:
            raise UserError(f"output {self._name!r} has no value yet: call predictor.run() first")
        return outputs[self._name].copy()

    def shape(self) -> list[int]:
        if self._is_input:
            data = self._predictor._feeds.get(self._name)
            if data is not None:
                return list(data.shape)
            spec = self._predictor._spec(self._name)
            return self._shape or [-1 if d is None else d for d in spec.shape]
        outputs = self._predictor._outputs
        return list(outputs[self._name].shape) if outputs else []

    def type(self) -> np.dtype:
        return self._predictor._spec(self._name).dtype


class Predictor:
    """A loaded model with named input/output handles; ``run()`` runs it on the handles' data."""

    def __init__(self, session: Session, config: Config):
        self.session = session
        self._config = config
        self._feeds: dict[str, np.ndarray] = {}
        self._outputs: dict[str, np.ndarray] | None = None

    def get_input_names(self) -> list[str]:
        return [s.name for s in self.session.inputs]

    def get_output_names(self) -> list[str]:
        return [s.name for s in self.session.outputs]

    def get_input_handle(self, name: str) -> Tensor:
        self._spec(name, inputs=True)
        return Tensor(self, name, is_input=True)

    def get_output_handle(self, name: str) -> Tensor:
        self._spec(name, inputs=False)
        return Tensor(self, name, is_input=False)

    def run(self, inputs: list[np.ndarray] | None = None) -> list[np.ndarray] | None:
        """Run on the data copied into the input handles (or on ``inputs``, in input order, which
        returns the outputs as Paddle's ``run(list)`` does)."""
        if inputs is not None:
            self._feeds = dict(zip(self.get_input_names(), inputs))
        self._outputs = self.session.run(self._feeds)
        return list(self._outputs.values()) if inputs is not None else None

    def clone(self) -> Predictor:
        """Another predictor on the same loaded model, sharing its weights (as Paddle's clone does):
        nothing is re-read; each clone has its own input/output handles and may run in its own thread."""
        return Predictor(self.session.clone_instance(), self._config)

    def try_shrink_memory(self) -> int:
        """Drop the input and output arrays this predictor holds; returns the bytes released
        (the engines size their own arenas; ONNX Runtime's shrink per run with memory_optim)."""
        held = sum(a.nbytes for a in self._feeds.values()) + sum(a.nbytes for a in (self._outputs or {}).values())
        self._feeds, self._outputs = {}, None
        return held

    def engine(self) -> str:
        return self.session.engine

    def _spec(self, name: str, inputs: bool | None = None):
        pools = {True: self.session.inputs, False: self.session.outputs}
        candidates = pools[inputs] if inputs is not None else [*self.session.inputs, *self.session.outputs]
        for spec in candidates:
            if spec.name == name:
                return spec
        kind = "input" if inputs else "output"
        names = ", ".join(s.name for s in candidates)
        raise UserError(f"the model has no {kind} named {name!r}; its {kind}s are: {names}")


def create_predictor(config: Config) -> Predictor:
    """Load the model of ``config`` on its engine (see :class:`Config`)."""
    if config._model is None:
        raise UserError("Config has no model: Config('model.pdmodel', 'model.pdiparams') or Config('model.onnx')")
    session = engines.load(str(config._model), engine=config.engine(), options=config.options(),
                           params=config._params)
    if config.mkldnn_bfloat16_enabled() and session.engine != "openvino":
        warn_once(f"inference-bf16-{session.engine}", f"enable_mkldnn_bfloat16: {session.engine} has no BF16 path; "
                  "running FP32 (config.set_engine('openvino') runs BF16 on CPUs with AVX-512 BF16/AMX)")
    return Predictor(session, config)


def _as_bytes(buffer) -> bytes:
    return buffer.encode("latin-1") if isinstance(buffer, str) else bytes(buffer or b"")


def _is_onnx(data: bytes) -> bool:
    import onnx

    try:
        return bool(onnx.load_from_string(data).graph.node)
    except Exception:  # not an ONNX ModelProto: a Paddle program
        return False
