"""The benchmark matrix: models x shapes x engines x precisions x threads, plus the anchors.

Everything the user asked for is checked here, before any worker starts: an unknown engine or
precision, a shape the model cannot take. Combinations that cannot run (an engine that does
not read the model's format, a precision an engine has no switch for) become :class:`Skipped`
entries with the reason, so the report can say why a row is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedeploy import engines
from edgedeploy.benchmarking.config import PRECISIONS, BenchConfig
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.util import parse_shape
from edgedeploy.ingest import Model, load_model


@dataclass(frozen=True)
class Skipped:
    """A combination not run, and why."""

    model: str
    shape: str
    engine: str
    precision: str
    reason: str

    def to_dict(self) -> dict:
        return {"model": self.model, "shape": self.shape, "engine": self.engine, "precision": self.precision,
                "status": "skipped", "reason": self.reason}


def declared_input_shape(model: Model) -> tuple[int | None, ...]:
    """The first input's shape as the model declares it (None = dynamic); () when unknown."""
    if model.format == "paddle":
        return _paddle_input_shape(model)
    import onnx

    graph = onnx.load(str(model.path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}
    first = next(i for i in graph.input if i.name not in init)
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in first.type.tensor_type.shape.dim)


def _paddle_input_shape(model: Model) -> tuple[int | None, ...]:
    if model.path.suffix != ".pdmodel":
        return ()  # a PIR (.json) program declares no shapes we can read ahead
    from paddle.base.proto import framework_pb2  # imports paddle; only for Paddle models

    from edgedeploy.engines.paddle import declared_specs

    prog = framework_pb2.ProgramDesc()
    prog.ParseFromString(model.path.read_bytes())
    feeds = [op.outputs[0].arguments[0] for op in prog.blocks[0].ops if op.type == "feed"]
    spec = declared_specs(model).get(feeds[0]) if feeds else None
    return spec.shape if spec else ()


def resolve_shape(model: Model, text: str | None, batch: int = 1) -> tuple[int, ...]:
    """The full input shape for ``model``: from ``text`` (HxW or full), or the model's own/zoo example.

    Raises :class:`UserError` naming the dimension when the model cannot take the shape.
    """
    declared = declared_input_shape(model)
    if text is None:
        if declared and all(d is not None for d in declared[1:]):
            dims = (batch, *declared[1:])
        elif model.zoo:
            dims = (batch, *model.zoo.example_shape[1:])
        else:
            raise UserError(f"{model.name} has a dynamic input shape ({_fmt(declared)}); give one with the shape parameter, "
                            "e.g. 640x640")
    else:
        given = parse_shape(text)
        if len(given) == 2:
            if declared and len(declared) != 4:
                raise UserError(f"shape {text}: HxW needs an image model (NCHW input); {model.name} takes "
                                f"{_fmt(declared)}: give the full shape")
            dims = (batch, (declared[1] if declared else None) or 3, *given)
        else:
            dims = (batch, *given[1:]) if batch != 1 else given
    if declared:
        if len(dims) != len(declared):
            raise UserError(f"shape {_fmt(dims)}: {model.name} takes rank {len(declared)} ({_fmt(declared)})")
        bad = [i for i, (d, want) in enumerate(zip(dims, declared)) if want is not None and d != want]
        if bad:
            i = bad[0]
            raise UserError(f"shape {_fmt(dims)}: {model.name} takes {_fmt(declared)} only (dimension {i} must be "
                            f"{declared[i]}, got {dims[i]}); leave shape out or pass a matching one")
    return tuple(dims)


def _fmt(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "unknown"


def precision_skip(engine: str, precision: str) -> str | None:
    """Why ``engine`` cannot be benchmarked at ``precision`` (None if it can)."""
    s = engines.spec(engine)
    if precision not in s.precisions:
        return f"{engine} supports {', '.join(s.precisions)}, not {precision}"
    if precision != "fp32" and "precision" not in s.options:
        return f"{engine} has no run-time precision switch ({precision} comes from a converted model)"
    return None


def plan(models: list[str], *, engine_names: list[str] | None = None, precisions: list[str] = ("fp32",),
         threads: list[int | None] = (None,), shapes: list[str] = (), batch: int = 1, anchors: bool = True,
         **settings) -> tuple[list[BenchConfig], list[Skipped]]:
    """Every configuration to run, anchors first for each (model, shape), and what was skipped.

    ``settings`` are the remaining :class:`BenchConfig` fields (runs, warmup, time_budget_s, ...).
    """
    chosen = list(engine_names or [e for e in engines.ENGINES if engines.available(e)])
    for e in chosen:
        engines.resolve(e, "onnx")  # checks the name ("auto" is resolved per model below)
    for p in precisions:
        if p not in PRECISIONS:
            raise UserError(f"precision {p!r}{did_you_mean(p, PRECISIONS)}; choose from {', '.join(PRECISIONS)}")
    dataset = settings.get("dataset")
    if dataset is not None:
        from edgedeploy.benchmarking.accuracy import SCORERS

        known = ["auto", *dict.fromkeys(s.dataset for s in SCORERS.values())]
        if dataset not in known:
            raise UserError(f"dataset {dataset!r}{did_you_mean(dataset, known)}; choose one of {', '.join(known)}")
    if batch < 1:
        raise UserError(f"batch {batch}: expected at least 1")
    resolved = [(name, load_model(name)) for name in models]
    # Resolve every shape first: a shape a model cannot take stops the run before anything starts.
    jobs = [(name, m, resolve_shape(m, text, batch)) for name, m in resolved for text in (shapes or [None])]
    configs: list[BenchConfig] = []
    skipped: list[Skipped] = []
    for name, m, shape in jobs:
        shape_str = _fmt(shape)
        if anchors:
            for e in engines.ENGINES:
                if m.format in engines.spec(e).formats and engines.available(e):
                    configs.append(BenchConfig(model=name, engine=e, shape=shape, untuned=True, **settings))
        for e in dict.fromkeys(engines.resolve(e, m.format) for e in chosen):
            why = engines.runnable(e, m.format) or (None if engines.available(e) else
                                                    f"not installed: {engines.spec(e).install}")
            if why:
                skipped.append(Skipped(m.name, shape_str, e, "*", why))
                continue
            for p in precisions:
                why = precision_skip(e, p)
                if why:
                    skipped.append(Skipped(m.name, shape_str, e, p, why))
                    continue
                configs += [BenchConfig(model=name, engine=e, shape=shape, precision=p, threads=t, **settings)
                            for t in threads]
    return configs, skipped
