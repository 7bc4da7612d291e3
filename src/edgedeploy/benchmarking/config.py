"""One benchmark configuration: what to run, on which engine, how, and for how long.

A :class:`BenchConfig` crosses a process boundary (runner → worker) as JSON, so it is
frozen and validated once, in ``__post_init__``; :meth:`BenchConfig.from_dict` refuses
unknown keys with a suggestion. It carries the :class:`~edgedeploy.engines.EngineOptions`
whole, so every engine setting of a :class:`~edgedeploy.plan.DeploymentPlan` is measured
(:meth:`BenchConfig.from_plan`); ``precision`` and ``threads`` are the options' own, kept
as fields for the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edgedeploy.engines.base import EngineOptions
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.vocab import RUNTIME_PRECISIONS, Precision

PRECISIONS: tuple[str, ...] = tuple(p.value for p in RUNTIME_PRECISIONS)

# How each engine's untuned default is labelled in the table (an anchor: the engine's ``open_default``).
ANCHOR_LABELS = {
    "onnxruntime": "ORT default (anchor)",
    "openvino": "OpenVINO default (anchor)",
    "paddle": "Paddle Inference default (anchor)",
    "ncnn": "ncnn default (anchor)",
}


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """One row of the benchmark.

    model: a path or zoo name. shape: the full input shape, batch first (NCHW).
    untuned: the anchor — the engine opened exactly as a user would with its defaults
        (``precision``, ``threads`` and ``options`` are then ignored and left at their defaults).
    options: the other engine settings (graph and memory optimisation, mkldnn, device, ...); ``threads``
        and ``precision`` are the row's own fields and are written into it, so ``options`` is then every
        setting the engine is opened with.
    warmup: untimed runs after the first inference. runs: timed runs wanted.
    time_budget_s: stop the timed phase early once this many seconds have passed (None: no limit);
        at least ``min(runs, 3)`` runs are always made.
    concurrency: threads issuing requests at once for the throughput figure (1: sequential).
    dataset: a generated data set (``edgedeploy.datasets``) to measure accuracy on; samples: how many.
    timeout_s: the worker subprocess is killed after this long.
    source: for a derived model file (e.g. the INT8 ONNX from ``edgedeploy optimize``), the model it
        stands for (zoo name or path): its row is compared with the anchors of ``source`` at the same
        shape, its input and accuracy use ``source``'s zoo entry (preprocessing, labels), its size is
        stated against ``source``'s files, and the table names it after ``source``.
    label: the table's scheme label, e.g. ``"openvino int8 (edgedeploy optimize)"`` (default: from
        engine and precision).
    """

    model: str
    engine: str
    shape: tuple[int, ...]
    precision: Precision = Precision.FP32
    threads: int | None = None
    options: EngineOptions | None = None
    warmup: int = 3
    runs: int = 50
    time_budget_s: float | None = 10.0
    concurrency: int = 1
    untuned: bool = False
    dataset: str | None = None
    samples: int = 20
    seed: int = 0
    timeout_s: float = 300.0
    source: str | None = None
    label: str | None = None

    def __post_init__(self):
        from edgedeploy import engines

        engines.spec(self.engine)
        if self.precision not in PRECISIONS:
            raise UserError(f"precision {self.precision!r}{did_you_mean(self.precision, PRECISIONS)}; "
                            f"choose one of {', '.join(PRECISIONS)}")
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", EngineOptions.from_dict(self.options))
        for name in ("warmup", "runs", "concurrency", "samples"):
            low = 0 if name in ("warmup", "samples") else 1
            if getattr(self, name) < low:
                raise UserError(f"{name} = {getattr(self, name)}: expected at least {low}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads = {self.threads}: expected at least 1 (or none for the engine's default)")
        if not self.shape or any(d < 1 for d in self.shape):
            raise UserError(f"shape {self.shape}: expected positive dimensions, batch first, e.g. (1, 3, 224, 224)")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise UserError(f"time budget {self.time_budget_s} s: expected a positive number of seconds")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.untuned and self.source is not None:
            raise UserError(f"an anchor is the source model itself, opened untuned: benchmark {self.source!r} "
                            f"with untuned=True, and {self.model!r} (source={self.source!r}) tuned")
        if self.untuned:
            # An anchor is the engine's own default; keep the fields honest about that.
            object.__setattr__(self, "options", EngineOptions())
        else:  # threads and precision are the row's own fields (the table's columns); the rest come from options
            object.__setattr__(self, "options", (self.options or EngineOptions()).replace(
                threads=self.threads, precision=self.precision))
        object.__setattr__(self, "precision", self.options.precision)
        object.__setattr__(self, "threads", self.options.threads)

    @classmethod
    def from_plan(cls, plan, **measurement) -> BenchConfig:
        """The benchmark row that measures :class:`~edgedeploy.plan.DeploymentPlan` ``plan`` exactly:
        its model file (standing for its source), engine, shape and every engine option.
        ``measurement``: runs, warmup, time_budget_s, dataset, samples, timeout_s, label, ..."""
        if plan.shape is None:
            raise UserError(f"plan {plan.label} has no input shape; a benchmark needs one")
        return cls(model=plan.model.path, engine=plan.engine.value, shape=plan.shape, options=plan.options,
                   threads=plan.options.threads, precision=plan.options.precision, untuned=plan.untuned,
                   source=plan.model.source, **measurement)

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def scheme(self) -> str:
        """The table's label, e.g. ``"openvino bf16 (edgedeploy)"`` or ``"ORT default (anchor)"``."""
        if self.label:
            return self.label
        if self.untuned:
            return ANCHOR_LABELS[self.engine]
        return f"{self.engine} {self.precision} (edgedeploy)"

    @property
    def compared_model(self) -> str:
        """The model whose anchors this row's ratios are against: ``source`` if given, else ``model``."""
        return self.source or self.model

    @property
    def shape_str(self) -> str:
        return "x".join(map(str, self.shape))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["precision"] = self.precision.value
        d["options"] = self.options.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> BenchConfig:
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise UserError(f"unknown benchmark setting {unknown[0]!r}{did_you_mean(unknown[0], known)}; "
                            f"known: {', '.join(sorted(known))}")
        data = dict(data)
        if "shape" in data:
            data["shape"] = tuple(data["shape"])
        return cls(**data)
