"""Engines ("backends"): found by name, imported on first use, described by one capability table.

>>> from edgedeploy import engines
>>> with engines.open("ppocr-cls", engine="openvino") as session:
...     out = session.run(session.example_feeds())
...     print(session.time(session.example_feeds(), runs=20).stat("p50"))

``ENGINES`` is the single source of truth for what each engine can do; the CLI choices, the
tuner, ``doctor`` and the tests all read it.

Each engine is one module, a loader and a runner: ``open(model, options)`` (the engine as
edgedeploy tunes it) and ``open_default(model)`` (the engine exactly as its users run it,
untuned: the *anchor* every figure is compared with), both returning a :class:`Session`,
plus ``gpu_available()``. Adding an engine is adding its module and its row in ``ENGINES``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass

from edgedeploy.engines.base import EngineOptions, Session, TensorSpec, warn_once
from edgedeploy.engines.profiling import LayerTime
from edgedeploy.engines.timing import Timing
from edgedeploy.errors import EngineMissing, UserError, did_you_mean
from edgedeploy.vocab import Device, Engine, Precision

log = logging.getLogger(__name__)

__all__ = ["ENGINES", "EngineOptions", "EngineSpec", "LayerTime", "Session", "TensorSpec", "Timing", "available",
           "dynamic_input", "gpu_available", "load", "open", "open_default", "profile", "resolve", "runnable", "warm_up"]


@dataclass(frozen=True, kw_only=True)
class EngineSpec:
    """What one engine is and supports.

    formats: model formats it runs (anything else is converted to ONNX first, if it takes ONNX).
    options: the :class:`EngineOptions` fields it honours; the rest are reported as notes.
    profiler: whether its module reads per-layer times from the engine (``profile``; :func:`profile`).
    """

    name: Engine
    module: str
    package: str  # import name of its SDK
    install: str
    formats: tuple[str, ...]
    devices: tuple[Device, ...]
    precisions: tuple[Precision, ...]
    options: tuple[str, ...]
    description: str
    profiler: bool = False


CPU_GPU = (Device.CPU, Device.GPU)
FP32, BF16, FP16, INT8 = Precision.FP32, Precision.BF16, Precision.FP16, Precision.INT8

ENGINES: dict[Engine, EngineSpec] = {
    Engine.ONNXRUNTIME: EngineSpec(
        name=Engine.ONNXRUNTIME,
        module="edgedeploy.engines.onnxruntime",
        package="onnxruntime",
        install="pip install onnxruntime (or onnxruntime-gpu for CUDA/TensorRT)",
        formats=("onnx",),
        devices=CPU_GPU,
        precisions=(FP32, FP16, INT8),
        options=("threads", "graph_optimization", "memory_optimization", "device", "input_shape"),
        description="ONNX Runtime: the embedded default; CPU, CUDA and TensorRT providers",
        profiler=True,
    ),
    Engine.OPENVINO: EngineSpec(
        name=Engine.OPENVINO,
        module="edgedeploy.engines.openvino",
        package="openvino",
        install="pip install 'edgedeploy[openvino]'",
        formats=("onnx", "paddle"),
        devices=CPU_GPU,
        precisions=(FP32, BF16, FP16, INT8),
        options=("threads", "memory_optimization", "device", "precision", "input_shape"),
        description="Intel OpenVINO: CPU (AVX-512/VNNI/AMX) and Intel GPU; reads ONNX and Paddle models",
        profiler=True,
    ),
    Engine.PADDLE: EngineSpec(
        name=Engine.PADDLE,
        module="edgedeploy.engines.paddle",
        package="paddle",
        install="pip install 'edgedeploy[paddle]'",
        formats=("paddle",),
        devices=CPU_GPU,
        precisions=(FP32, INT8),
        options=("threads", "graph_optimization", "memory_optimization", "mkldnn", "device"),
        description="Paddle Inference: Paddle-format models, CPU with oneDNN (MKLDNN), CUDA GPU",
    ),
    Engine.NCNN: EngineSpec(
        name=Engine.NCNN,
        module="edgedeploy.engines.ncnn",
        package="ncnn",
        install="pip install ncnn==1.0.20261020 && pip install --no-deps pnnx==20261020",
        formats=("onnx",),
        devices=("cpu",),
        precisions=("fp32", "fp16"),
        options=("threads", "precision"),
        description="Tencent ncnn: the ARM boards' CPU runtime (x86 too); ONNX converted by pnnx, cached",
    ),
}
ENGINE_CHOICES = (*ENGINES, Engine.AUTO)


def spec(name: str) -> EngineSpec:
    try:
        return ENGINES[name]
    except KeyError:
        raise UserError(
            f"unknown engine {name!r}{did_you_mean(name, ENGINE_CHOICES)}; choose one of {', '.join(ENGINE_CHOICES)}"
        ) from None


def available(name: str) -> bool:
    """Whether the engine's SDK is installed (does not import it)."""
    return importlib.util.find_spec(spec(name).package) is not None


def _module(name: str):
    s = spec(name)
    if not available(name):
        raise EngineMissing(f"engine {name!r} is not installed: {s.install}")
    return importlib.import_module(s.module)


def gpu_available(name: str) -> bool:
    """Whether this engine sees a GPU on this machine."""
    return available(name) and _module(name).gpu_available()


def runnable(name: str, model_format: str) -> str | None:
    """None if engine ``name`` can run a model of ``model_format`` (natively or via ONNX); else why not."""
    s = spec(name)
    if model_format in s.formats or "onnx" in s.formats:
        return None
    return f"{name} runs {'/'.join(s.formats)} models only, not {model_format}"


def resolve(name: str, model_format: str) -> str:
    """Turn ``auto`` into a concrete engine: the format's native engine if installed, else ONNX Runtime."""
    if name != "auto":
        spec(name)
        return name
    if model_format == "paddle" and available("paddle"):
        return "paddle"
    return "onnxruntime"


def warm_up(name: str) -> None:
    """Pay an engine's fixed start-up cost now: import its SDK and run a one-Conv model once.

    Libraries, device plugins, kernel libraries (oneDNN) and thread pools load on the first
    inference, not at import. Measuring a model's memory after ``warm_up`` gives what the model
    itself costs; the engine's own cost is part of the baseline, once per process.
    """
    mod = _module(name)
    if "onnx" not in spec(name).formats:
        return  # Paddle has no in-memory model to warm with; importing it is the bulk of its cost
    import tempfile
    from pathlib import Path

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgedeploy.ingest import load_model

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "warm_up",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], [weight])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warm_up.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
        session = mod.open(load_model(path), EngineOptions())
        session.run({"x": np.zeros((1, 3, 16, 16), np.float32)})
        session.release()


def _runnable_module(m, engine: str):
    """(engine name, its module) for model ``m``, once the engine is known, installed and takes the model."""
    name = resolve(engine, m.format)
    why_not = runnable(name, m.format)
    if why_not:
        raise UserError(f"cannot run {m.name} on {name}: {why_not}; use engine {resolve('auto', m.format)!r}")
    return name, _module(name)


def open_default(model, engine: str = "onnxruntime", *, params=None) -> Session:
    """``model`` on ``engine`` opened exactly as the engine's own quick-start does, every default left
    alone (no threads, precision or performance hints): the anchor. ``auto``: the format's native engine."""
    from edgedeploy.ingest import load_model

    if engine != "auto":
        spec(engine)
    m = load_model(model, params)
    name, mod = _runnable_module(m, engine)
    return mod.open_default(m)


def open(model, *, engine: str = "onnxruntime", options: EngineOptions | None = None,  # noqa: A001
         params=None) -> Session:
    """Open ``model`` (path, zoo name or :class:`~edgedeploy.ingest.Model`) on ``engine`` with ``options``.

    GPU asked for where the engine sees none: warns once and runs on the CPU (as Paddle
    Inference does); the session's ``notes`` say so, and so do options the engine ignores.
    """
    from edgedeploy.ingest import load_model

    options = options or EngineOptions()
    if engine != "auto":
        spec(engine)  # an unknown engine is reported before any model is read
    m = load_model(model, params)
    name, mod = _runnable_module(m, engine)
    notes: list[str] = []
    if options.device == "gpu" and not mod.gpu_available():
        msg = f"{name}: no GPU available on this machine; running on the CPU"
        warn_once(f"nogpu-{name}", msg)
        notes.append(msg)
        options = options.replace(device="cpu")
    s = spec(name)
    defaults = EngineOptions()
    for field_name in ("graph_optimization", "memory_optimization", "mkldnn", "precision", "input_shape"):
        if field_name not in s.options and getattr(options, field_name) != getattr(defaults, field_name):
            notes.append(f"{name} does not expose {field_name}; the option has no effect on this engine")
    session = mod.open(m, options)
    session.notes[:0] = notes
    for note in notes:
        log.info(note)
    return session


def dynamic_input(model, params=None) -> bool:
    """Whether ``model`` has one input with a dynamic dimension: what ``EngineOptions.input_shape`` can fix."""
    import onnx

    from edgedeploy.ingest import load_model

    graph = onnx.load(str(load_model(model, params).onnx_path()), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    return len(inputs) == 1 and any(not d.dim_value for d in inputs[0].type.tensor_type.shape.dim)


def profile(model, *, engine: str = "onnxruntime", options: EngineOptions | None = None, untuned: bool = False,
            feeds: dict | None = None, shape: tuple[int, ...] | None = None, runs: int = 20,
            params=None) -> list[LayerTime]:
    """Where ``engine`` spends a run of ``model``: one :class:`LayerTime` per executed layer (operator type,
    kernel, the precision it computed in, ms: the lowest of ``runs`` runs), from the engine's own profiler, on
    the model opened as :func:`open` with ``options`` does (``untuned``: as :func:`open_default` does).
    ``feeds``: the inputs (default: seeded random inputs of ``shape``). Engines without a profiler refuse."""
    from edgedeploy.ingest import load_model

    if engine != "auto":
        spec(engine)
    m = load_model(model, params)
    name, mod = _runnable_module(m, engine)
    if not spec(name).profiler:
        raise UserError(f"{name} reports no per-layer times to edgedeploy; profile on "
                        f"{' or '.join(e for e, s in ENGINES.items() if s.profiler)}")
    if runs < 1:
        raise UserError(f"runs = {runs}: expected at least 1 profiled run")
    return mod.profile(m, options or EngineOptions(), feeds, runs, untuned, shape)


load = open  # the name the library's callers have used since the first version
