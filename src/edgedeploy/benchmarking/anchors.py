"""The anchors: each engine opened exactly as a user would open it, with every default left alone.

These are deliberately NOT edgedeploy's engine path (``edgedeploy.engines``), which sets
threads, precision and performance hints. An anchor is the plain SDK call from the engine's
own quick-start, so that every edgedeploy figure can be stated as a ratio against what a
user gets without us, on the same machine at the same time:

- ONNX Runtime: ``ort.InferenceSession(path)``
- OpenVINO: ``ov.Core().compile_model(path, "CPU")`` — on CPUs with AVX-512 BF16 or AMX
  this silently runs in BF16; that is the default users get, so the anchor keeps it.
- Paddle Inference: ``Config(model, params)`` + ``create_predictor`` (Paddle 3.x defaults:
  oneDNN on, IR optimisation on, one CPU math thread).

Each returns an :class:`AnchorSession`: ``inputs``/``outputs`` specs and ``run(feeds) -> dict``
(what the task classes need), plus :meth:`AnchorSession.fork` for concurrent requests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgedeploy.engines.base import TensorSpec
from edgedeploy.errors import UserError

Run = Callable[[dict], dict]


class AnchorSession:
    """A plain SDK session behind the two calls the benchmark needs."""

    def __init__(self, engine: str, inputs: list[TensorSpec], outputs: list[TensorSpec], run: Run,
                 fork: Callable[[], Run], notes: list[str] | None = None):
        self.engine = engine
        self.inputs = inputs
        self.outputs = outputs
        self.run = run
        self._fork = fork
        self.notes = notes or []

    def fork(self) -> Run:
        """A ``run`` function another thread may call while this one runs (own request/predictor)."""
        return self._fork()

    def release(self) -> None:
        self.run = self._fork = None


def _dims(shape) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def open_ort_default(model) -> AnchorSession:
    """``onnxruntime.InferenceSession(path)``, nothing else."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model.onnx_path()))

    def spec(arg) -> TensorSpec:  # "tensor(float)" -> float32, "tensor(int64)" -> int64, ...
        kind = arg.type.removeprefix("tensor(").rstrip(")")
        return TensorSpec(arg.name, np.dtype({"float": "float32", "double": "float64"}.get(kind, kind)),
                          _dims(arg.shape or ()))

    inputs, outputs = [spec(a) for a in sess.get_inputs()], [spec(a) for a in sess.get_outputs()]
    names = [o.name for o in outputs]

    def run(feeds: dict) -> dict:
        return dict(zip(names, sess.run(None, feeds)))

    # InferenceSession.run is thread-safe: concurrent requests share the one session.
    return AnchorSession("onnxruntime", inputs, outputs, run, lambda: run,
                         notes=[f"threads: ORT default ({sess.get_session_options().intra_op_num_threads or 'all cores'})"])


def open_openvino_default(model) -> AnchorSession:
    """``openvino.Core().compile_model(path, "CPU")``: no hints, so OpenVINO's own precision choice."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(model.path), "CPU")

    def spec(port) -> TensorSpec:
        ps = port.get_partial_shape()
        shape = tuple(d.get_length() if d.is_static else None for d in ps) if ps.rank.is_static else ()
        return TensorSpec(port.get_any_name(), np.dtype(port.get_element_type().to_dtype()), shape)

    inputs, outputs = [spec(p) for p in compiled.inputs], [spec(p) for p in compiled.outputs]

    def make_run() -> Run:
        request = compiled.create_infer_request()

        def run(feeds: dict) -> dict:
            result = request.infer(feeds)
            return {o.name: result[port] for o, port in zip(outputs, compiled.outputs)}

        return run

    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
    return AnchorSession("openvino", inputs, outputs, make_run(), make_run,
                         notes=[f"OpenVINO default inference precision here: {precision}"])


def open_paddle_default(model) -> AnchorSession:
    """``paddle.inference.Config(model, params)`` + ``create_predictor``, nothing else."""
    if model.format != "paddle":
        raise UserError(f"the Paddle Inference anchor runs Paddle-format models only; {model.name} is {model.format}")
    import paddle.inference as pi

    from edgedeploy.engines.paddle import declared_specs  # reads the program's declared shapes only

    config = pi.Config(str(model.path), str(model.params))
    notes = [f"Paddle defaults: oneDNN {'on' if config.mkldnn_enabled() else 'off'}, "
             f"{config.cpu_math_library_num_threads()} CPU math thread(s)"]
    predictor = pi.create_predictor(config)
    specs = declared_specs(model)
    f32 = np.dtype(np.float32)
    inputs = [specs.get(n) or TensorSpec(n, f32, ()) for n in predictor.get_input_names()]
    outputs = [specs.get(n) or TensorSpec(n, f32, ()) for n in predictor.get_output_names()]

    def make_run(p) -> Run:
        def run(feeds: dict) -> dict:
            for name, arr in feeds.items():
                handle = p.get_input_handle(name)
                handle.reshape(list(arr.shape))
                handle.copy_from_cpu(arr)
            p.run()
            return {o.name: p.get_output_handle(o.name).copy_to_cpu() for o in outputs}

        return run

    # clone() shares the weights with the original predictor: the usual way to serve threads.
    return AnchorSession("paddle", inputs, outputs, make_run(predictor), lambda: make_run(predictor.clone()),
                         notes=notes)


OPENERS: dict[str, Callable] = {
    "onnxruntime": open_ort_default,
    "openvino": open_openvino_default,
    "paddle": open_paddle_default,
}


def open_default(engine: str, model) -> AnchorSession:
    """The anchor for ``engine``; raises :class:`UserError` where an engine has none."""
    try:
        return OPENERS[engine](model)
    except KeyError:
        raise UserError(f"no anchor for engine {engine!r}; anchors exist for {', '.join(OPENERS)}") from None
