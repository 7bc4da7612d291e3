"""ONNX Runtime: the embedded default engine (CPU; CUDA and TensorRT providers where present)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edgedeploy.engines.base import EngineOptions, Session, TensorSpec, fixed_shape
from edgedeploy.engines.profiling import WARMUP, LayerTime, mean_per_layer, precision_name
from edgedeploy.errors import InternalError, UserError

_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
_state = ort.capi.onnxruntime_pybind11_state
# What ORT raises for a model or an input it cannot take (the user's to fix); anything else it raises
# (RuntimeException, EPFail) is an engine failure and propagates as one.
_MODEL_ERRORS = (_state.Fail, _state.InvalidGraph, _state.InvalidArgument, _state.NotImplemented,
                 _state.InvalidProtobuf, _state.NoSuchFile)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def gpu_available() -> bool:
    return any(p in ort.get_available_providers() for p in GPU_PROVIDERS)


# ORT's global thread pool is process-wide: sized once, by its first user. Once it exists ORT
# refuses sessions with their own pools, so every later session in the process joins it.
_global_pool: dict[str, int] = {}


def session_options(options: EngineOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if options.threads and not options.shared_threads:
        so.intra_op_num_threads = options.threads  # ORT ignores it (and says so) once a global pool exists
        so.inter_op_num_threads = 1
    if options.shared_threads or _global_pool:
        if not _global_pool:
            ort.set_global_thread_pool_sizes(options.threads or 0, 1)
            _global_pool["threads"] = options.threads or 0
        so.use_per_session_threads = False
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if options.graph_optimization
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if options.memory_optimization:
        # No arena: a run's activations are freed when it ends, so between runs the session holds its
        # weights alone. The memory pattern stays on: the planned activations come as one block per run
        # instead of one allocation per tensor, a third of the page faults (PicoDet 800x608: 12k
        # instead of 40k a run) for the same memory between runs.
        so.enable_cpu_mem_arena = False
        so.enable_mem_pattern = True
    return so


def providers(options: EngineOptions) -> list:
    if options.device != "gpu":
        return ["CPUExecutionProvider"]
    have = ort.get_available_providers()
    chosen: list = []
    if "TensorrtExecutionProvider" in have:
        chosen.append(("TensorrtExecutionProvider", {"device_id": options.device_id, "trt_engine_cache_enable": True}))
    if "CUDAExecutionProvider" in have:
        chosen.append(("CUDAExecutionProvider", {"device_id": options.device_id,
                                                 "gpu_mem_limit": options.gpu_memory_mb << 20}))
    return [*chosen, "CPUExecutionProvider"]


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, np.dtype(_DTYPES.get(arg.type, np.float32)), shape)


def _settings(sess: ort.InferenceSession) -> dict:
    so = sess.get_session_options()
    return {"intra_op_num_threads": so.intra_op_num_threads, "enable_cpu_mem_arena": so.enable_cpu_mem_arena,
            "enable_mem_pattern": so.enable_mem_pattern, "graph_optimization_level": str(so.graph_optimization_level),
            "providers": sess.get_providers()}


class OrtSession(Session):
    def __init__(self, sess: ort.InferenceSession, device: str):
        super().__init__(engine="onnxruntime", inputs=[_spec(a) for a in sess.get_inputs()],
                         outputs=[_spec(a) for a in sess.get_outputs()], device=device, settings=_settings(sess))
        self._sess = sess
        self._names = [o.name for o in self.outputs]

    def _run(self, feeds):
        try:
            return self._sess.run(self._names, feeds)
        except _MODEL_ERRORS as exc:  # a shape the graph cannot take, etc.
            raise UserError(f"onnxruntime could not run the model on these inputs: {str(exc).splitlines()[0][:300]}") from None
        except (_state.RuntimeException, _state.EPFail) as exc:  # the engine failed, not the input
            raise InternalError(f"onnxruntime failed while running the model: {str(exc).splitlines()[0][:300]}") from exc

    def clone_instance(self):
        # An InferenceSession may run from several threads at once: instances share it whole.
        twin = OrtSession(self._sess, self.device)
        twin.notes = list(self.notes)
        return twin

    def _release(self):
        self._sess = None


def _session(path, **kwargs) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), **kwargs)
    except _MODEL_ERRORS as exc:  # the model's fault (an operator ORT lacks, a broken graph): the user's to fix
        raise UserError(f"onnxruntime could not load {path.name}: {str(exc).splitlines()[0][:300]}") from None


def _fix_dimensions(so: ort.SessionOptions, path, options: EngineOptions) -> None:
    """Free-dimension overrides: each named dynamic dimension of the one input fixed to ``options.input_shape``."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    specs = [TensorSpec(i.name, np.dtype(np.float32), tuple(d.dim_value or None for d in i.type.tensor_type.shape.dim))
             for i in inputs]
    shape = fixed_shape(specs, options)  # one input, of this rank, static dimensions as given
    for d, want in zip(inputs[0].type.tensor_type.shape.dim, shape):
        if not d.dim_value:
            if not d.dim_param:
                raise UserError(f"input {inputs[0].name!r} has an unnamed dynamic dimension, which onnxruntime cannot "
                                "fix (it overrides dimensions by name): leave input_shape unset")
            so.add_free_dimension_override_by_name(d.dim_param, want)


def open(model, options: EngineOptions, *, so: ort.SessionOptions | None = None) -> Session:  # noqa: A001
    """The model on ONNX Runtime as edgedeploy tunes it (threads, graph level, arena, providers); ``so``: those
    session options, already made from ``options`` and changed further (e.g. profiling on, for :func:`profile`)."""
    path = model.onnx_path()
    so = so or session_options(options)
    if options.input_shape is not None:
        _fix_dimensions(so, path, options)
    sess = _session(path, sess_options=so, providers=providers(options))
    device = "gpu" if any(p in GPU_PROVIDERS for p in sess.get_providers()) else "cpu"
    session = OrtSession(sess, device)
    if _global_pool and options.threads and options.threads != _global_pool["threads"]:
        session.notes.append(f"threads={options.threads} has no effect: this process runs ONNX Runtime on its shared "
                             f"thread pool ({_global_pool['threads'] or 'default'} threads)")
    return session


def open_default(model, *, so: ort.SessionOptions | None = None) -> Session:
    """The anchor: ``onnxruntime.InferenceSession(path)`` and nothing else, as ORT's quick-start does
    (``so``: default session options changed further, e.g. profiling on, for :func:`profile`)."""
    sess = _session(model.onnx_path(), **({"sess_options": so} if so is not None else {}))
    session = OrtSession(sess, "cpu")
    session.notes.append(f"threads: ORT default ({sess.get_session_options().intra_op_num_threads or 'all cores'})")
    return session


# an ORT profile's element types (input_type_shape keys) → edgedeploy's precisions
_ORT_TYPES = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "uint8": "int8", "int8": "int8"}


def _layers(events: list[dict]) -> list[LayerTime]:
    out = []
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        first = next(iter((args.get("input_type_shape") or [{}])[0]), "")
        out.append(LayerTime(e["name"][: -len("_kernel_time")], args.get("op_name", "?"),
                             f"{args.get('op_name', '?')} ({args.get('provider', '?')})",
                             precision_name(_ORT_TYPES.get(first, first or "?")), e.get("dur", 0) / 1000))
    return out


def profile(model, options: EngineOptions, feeds: dict | None, runs: int, untuned: bool,
            shape: tuple[int, ...] | None = None) -> list[LayerTime]:
    """Per-node times from ONNX Runtime's profiler (``enable_profiling``), mean of ``runs`` runs per node, on
    the session :func:`open` (or, ``untuned``, :func:`open_default`) makes. A node's precision: its first
    input's element type (QLinearConv on uint8 is INT8; a Conv on float is FP32)."""
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="edgedeploy-ort-profile-") as tmp:
        so = ort.SessionOptions() if untuned else session_options(options)
        so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / "ort")
        session = open_default(model, so=so) if untuned else open(model, options, so=so)
        feeds = session.check_feeds(feeds if feeds is not None else session.example_feeds(shape))
        for _ in range(WARMUP + runs):  # ORT's profiler cannot start late: the warm-up runs are in it, left out below
            session._run(feeds)
        events = json.loads(Path(session._sess.end_profiling()).read_text())
        session.release()
    return mean_per_layer(_layers(events), skip=WARMUP)
