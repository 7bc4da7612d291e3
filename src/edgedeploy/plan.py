"""A deployment plan: one model file on one engine with every setting, as searched, measured and run.

The same :class:`DeploymentPlan` travels the whole way: the tuner searches over plans and
returns one; the benchmark worker opens and measures exactly that plan (every engine option,
not a subset); the manifest records it (:meth:`~DeploymentPlan.to_dict`, JSON); ``deployment
run``, ``serve`` and pipelines open it with :meth:`~DeploymentPlan.open`. A setting that is in
a plan was therefore measured with the plan.

>>> from edgedeploy.plan import DeploymentPlan, ModelFile
>>> plan = DeploymentPlan(engine="openvino", precision="bf16", model=ModelFile.of("model.onnx"),
...                       options=EngineOptions(threads=2, precision="bf16"), shape=(1, 3, 224, 224))
>>> with plan.open() as session:
...     session.run(session.example_feeds(plan.shape))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgedeploy.engines import EngineOptions, Session
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.vocab import Engine, Precision, parse

FORMAT = 1  # version of the plan's JSON form


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    """The model file a plan runs, and where it came from.

    path: the file (``.onnx``, ``.pdmodel``; a zoo name is resolved to its file when opened).
    params: Paddle's ``.pdiparams`` beside it, if any.
    source: the model this file stands for (the FP32 model an INT8 file was made from); None: itself.
    sha256: the file's digest when recorded (a deployment); None while searching.
    made_by: how the file was made: ``"as given"`` or e.g. ``"edgedeploy.optimize int8 for openvino"``.
    """

    path: str
    params: str | None = None
    source: str | None = None
    sha256: str | None = None
    made_by: str = "as given"

    @classmethod
    def of(cls, path, params=None, **provenance) -> ModelFile:
        return cls(path=str(path), params=str(params) if params else None, **provenance)

    def hashed(self) -> ModelFile:
        """This file with its sha256 filled in."""
        from edgedeploy.util import sha256_file

        return replace(self, sha256=sha256_file(self.path))

    def to_dict(self) -> dict:
        return {"path": self.path, "params": self.params, "source": self.source, "sha256": self.sha256,
                "made_by": self.made_by}


@dataclass(frozen=True, kw_only=True)
class DeploymentPlan:
    """engine, precision, batch and input shape, the engine options whole, and the model file.

    precision: the deployment's precision — from the model file (an INT8 or FP16 file made by
        ``edgedeploy optimize``, run with ``options.precision`` fp32) or from ``options.precision``
        (bf16/fp16: the engine lowers an FP32 model's arithmetic at run time); the two agree,
        except mixed INT8+BF16: an INT8 file whose float layers the engine runs in BF16.
    untuned: open the engine exactly as its users do (``open_default``): the anchor; ``options``
        are then the engine's own defaults and are not applied.
    """

    engine: Engine
    precision: Precision
    model: ModelFile
    options: EngineOptions = field(default_factory=EngineOptions)
    batch: int = 1
    shape: tuple[int, ...] | None = None
    untuned: bool = False

    def __post_init__(self):
        engine = parse(Engine, self.engine, what="engine")
        if engine == Engine.AUTO:
            raise UserError("a plan names a concrete engine, not 'auto'")
        object.__setattr__(self, "engine", engine)
        precision = parse(Precision, self.precision, what="precision")
        if precision == Precision.AUTO:
            raise UserError("a plan names a concrete precision, not 'auto'")
        object.__setattr__(self, "precision", precision)
        if isinstance(self.model, str | Path):
            object.__setattr__(self, "model", ModelFile.of(self.model))
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", EngineOptions.from_dict(self.options))
        mixed = precision == Precision.INT8 and self.options.precision == Precision.BF16  # INT8 layers, BF16 the rest
        if self.options.precision != Precision.FP32 and self.options.precision != precision and not mixed:
            raise UserError(f"plan precision {precision.value} but options.precision {self.options.precision.value}: "
                            "an engine asked to lower the arithmetic runs at that precision, so the two must agree")
        if self.shape is not None:
            shape = tuple(int(d) for d in self.shape)
            if not shape or any(d < 1 for d in shape):
                raise UserError(f"shape {self.shape}: expected positive dimensions, batch first")
            if shape[0] != self.batch:
                raise UserError(f"shape {shape} has batch {shape[0]}, the plan's batch is {self.batch}")
            object.__setattr__(self, "shape", shape)
        if isinstance(self.batch, bool) or self.batch < 1:
            raise UserError(f"batch = {self.batch}: expected at least 1")

    @property
    def threads(self) -> int | None:
        return self.options.threads

    @property
    def label(self) -> str:
        """Short name for tables and logs, e.g. ``openvino bf16 t2 b1``."""
        if self.untuned:
            return f"{self.engine.value} default (anchor)"
        precision = self.precision.value
        if self.options.precision not in (Precision.FP32, self.precision):
            precision += f"+{self.options.precision.value}"  # mixed: an INT8 model whose float layers run in BF16
        static = " static" if self.options.input_shape else ""  # compiled for its one input shape
        return f"{self.engine.value} {precision} t{self.threads or 'default'} b{self.batch}{static}"

    def with_batch(self, batch: int) -> DeploymentPlan:
        shape = (batch, *self.shape[1:]) if self.shape else None
        fixed = self.options.input_shape
        options = self.options.replace(input_shape=(batch, *fixed[1:])) if fixed else self.options
        return replace(self, batch=batch, shape=shape, options=options)

    def with_options(self, **changes) -> DeploymentPlan:
        return replace(self, options=self.options.replace(**changes))

    def with_model(self, model: ModelFile) -> DeploymentPlan:
        return replace(self, model=model)

    def under(self, base: str | Path) -> DeploymentPlan:
        """This plan with a relative model path taken relative to ``base`` (a deployment directory)."""
        m = self.model
        return replace(self, model=replace(m, path=str(Path(base) / m.path),
                                           params=str(Path(base) / m.params) if m.params else None))

    def open(self, *, base: str | Path | None = None) -> Session:
        """The session this plan describes; a relative model path is taken relative to ``base``."""
        from edgedeploy import engines
        from edgedeploy.ingest import load_model

        m = (self.under(base) if base is not None else self).model
        model = load_model(m.path, m.params)
        if self.untuned:
            return engines.open_default(model, self.engine.value)
        return engines.open(model, engine=self.engine.value, options=self.options)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "engine": self.engine.value, "precision": self.precision.value,
                "batch": self.batch, "shape": list(self.shape) if self.shape else None, "untuned": self.untuned,
                "options": self.options.to_dict(), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data) -> DeploymentPlan:
        """The plan from :meth:`to_dict`'s form; wrong keys or types are one :class:`UserError` line."""
        if not isinstance(data, dict):
            raise UserError(f"a deployment plan is a JSON object, not {type(data).__name__}")
        data = dict(data)
        if data.pop("format", FORMAT) != FORMAT:
            raise UserError(f"deployment plan format is not {FORMAT}: made by another edgedeploy version; deploy again")
        known = ("engine", "precision", "batch", "shape", "untuned", "options", "model")
        unknown = [k for k in data if k not in known]
        if unknown:
            raise UserError(f"unknown plan key {unknown[0]!r}{did_you_mean(unknown[0], known)}; known: {', '.join(known)}")
        model = data.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("path"), str):
            raise UserError("deployment plan: model must be an object with a path")
        try:
            data["model"] = ModelFile(**model)
            if data.get("shape") is not None:
                data["shape"] = tuple(data["shape"])
            return cls(**data)
        except TypeError as exc:
            raise UserError(f"deployment plan: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
