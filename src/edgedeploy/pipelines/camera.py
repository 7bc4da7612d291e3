"""The seed's smart-camera class, ``EdgeInferenceSystem``, as a base class to subclass, on the
Paddle-style Predictor API (:mod:`edgedeploy.inference`), usable alone or as a pipeline stage.

    class PersonCounter(EdgeInferenceSystem):
        def preprocess(self, frame):            # BGR uint8 HxWx3 → the model's input array
            x = cv2.resize(frame, (224, 224)).astype("float32") / 255
            return x.transpose(2, 0, 1)[None]
        def postprocess(self, results):         # the model's output array → your result
            return {"people": int(results.argmax())}

    system = PersonCounter("model.onnx")        # or ("model.pdmodel", "model.pdiparams")
    system.process_frame(frame)                 # → {"people": 3}
    Pipeline(VideoSource("cam.mp4"), [system.as_stage()], [JsonlSink("out.jsonl")]).run()

In YAML, ``{type: python, target: "mypkg.cameras:PersonCounter", args: {model_path: model.onnx}}``, run
with ``edgedeploy pipeline FILE --allow-python mypkg`` (python stages are refused otherwise).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from edgedeploy import inference
from edgedeploy.errors import UserError
from edgedeploy.pipelines.stage import Frame, FunctionStage, Stage


class EdgeInferenceSystem:
    """frame → ``preprocess`` → the model (a Predictor) → ``postprocess`` → result.

    As in the seed, the GPU is asked for (where the engine sees none it warns once and runs on
    the CPU) and memory optimisation is on. ``input_name``/``output_name`` default to the
    model's first input and output (the seed's model calls them "input" and "output").
    Subclasses write ``preprocess`` and usually ``postprocess``; ``events(result)`` may turn
    a result into events for the pipeline's sinks.
    """

    input_name: str | None = None
    output_name: str | None = None

    def __init__(self, model_path: str, params_path: str | None = None, *, engine: str | None = None,
                 use_gpu: bool = True, memory_optim: bool = True, threads: int | None = None):
        self.config = inference.Config(model_path, params_path)
        if engine:
            self.config.set_engine(engine)
        if use_gpu:
            self.config.enable_use_gpu(100, 0)
        if memory_optim:
            self.config.enable_memory_optim()
        if threads:
            self.config.set_cpu_math_library_num_threads(threads)
        self.predictor = inference.create_predictor(self.config)
        self._in = self.input_name or self.predictor.get_input_names()[0]
        self._out = self.output_name or self.predictor.get_output_names()[0]

    def process_frame(self, frame: np.ndarray) -> Any:
        """One frame (BGR uint8) through preprocess, the model and postprocess."""
        input_data = self.preprocess(frame)
        self.predictor.get_input_handle(self._in).copy_from_cpu(input_data)
        self.predictor.run()
        results = self.predictor.get_output_handle(self._out).copy_to_cpu()
        return self.postprocess(results)

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.preprocess(frame) must turn a BGR frame into the "
                                  f"model's input array ({self._in})")

    def postprocess(self, results: np.ndarray) -> Any:
        """The model's output as is; override to turn it into your result."""
        return results

    def events(self, result: Any, frame: Frame) -> list[dict]:
        """Events for the sinks from one frame's result (none by default)."""
        return []

    def as_stage(self, name: str | None = None) -> Stage:
        """This system as a pipeline stage: the result goes to ``frame.data[name]``."""
        key = name or type(self).__name__

        def run(frame: Frame) -> Frame:
            result = self.process_frame(frame.image)
            frame.data[key] = result
            frame.events.extend(self.events(result, frame))
            return frame

        return FunctionStage(run, key)


class PythonStage(Stage):
    """A stage from your code: ``target`` is ``"module:attr"`` naming an EdgeInferenceSystem
    subclass, a Stage subclass (built with ``args``), or a function ``frame -> frame``."""

    def __init__(self, *, target: str, args: dict[str, Any] | None = None, name: str | None = None):
        module, _, attr = target.partition(":")
        if not attr:
            raise UserError(f"python stage target {target!r}: expected 'module:name', e.g. 'mypkg.cameras:Counter'")
        try:
            self.obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"python stage target {target!r} cannot be imported: {exc}") from None
        self.args = dict(args or {})
        self.name = name or attr
        self.inner: Stage | None = None

    def open(self, pipeline) -> None:
        obj = self.obj
        if isinstance(obj, type) and issubclass(obj, EdgeInferenceSystem):
            self.inner = obj(**self.args).as_stage(self.name)
        elif isinstance(obj, type) and issubclass(obj, Stage):
            self.inner = obj(**self.args)
        elif callable(obj):
            self.inner = FunctionStage(obj, self.name)
        else:
            raise UserError(f"python stage {self.name}: {obj!r} is not a class or function")
        self.inner.open(pipeline)

    def process(self, frame: Frame) -> Frame | None:
        return self.inner.process(frame)

    def finish(self, end: Frame) -> Frame:
        return self.inner.finish(end) if self.inner else end

    def close(self) -> None:
        if self.inner:
            self.inner.close()
