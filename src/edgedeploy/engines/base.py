"""The one small interface every engine implements: load → describe → run → release.

The base :class:`Session` owns input checking and the output contract (a dict of numpy
arrays in the model's output order); an engine module writes only ``_run`` and ``_release``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from edgedeploy.engines.timing import Timing, time_runs
from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.vocab import RUNTIME_PRECISIONS, Device, Precision, parse

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """What the user may ask of any engine; each engine maps these onto its own settings.

    threads: intra-op threads (None = the engine's default).
    graph_optimization: the engine's graph optimiser (ORT ``graph_optimization_level``,
        Paddle ``switch_ir_optim``; OpenVINO always optimises and says so when asked not to).
    memory_optimization: trade a little speed for a smaller footprint (ORT: no arena, one planned
        activation block per run; Paddle ``enable_memory_optim``, OpenVINO latency hint with one stream).
    mkldnn: Paddle's oneDNN kernels on CPU (the others always use their own CPU kernels).
    precision: the arithmetic the engine may use for a float model. "fp32" is exact FP32
        everywhere (OpenVINO would otherwise pick BF16 on CPUs with AVX-512 BF16/AMX);
        "bf16"/"fp16" let OpenVINO lower precision at run time. INT8 comes from a quantized
        model (``edgedeploy optimize``), not from an engine option.
    shared_threads: run on one intra-op thread pool shared by every session in the process
        (ORT's global thread pool, sized by the first session that asks; OpenVINO's one Core
        always shares its pool) instead of a pool per session: many models, few threads.
    input_shape: compile for this one input shape (batch first; single-input models): the model's
        dynamic dimensions (e.g. a batch dimension left open by the exporter) are fixed to it
        (OpenVINO: ``Model.reshape`` before compiling, so it plans memory and kernels once instead
        of per run; ONNX Runtime: free-dimension overrides). The session then takes that shape only.
    """

    device: Device = Device.CPU
    device_id: int = 0
    gpu_memory_mb: int = 100
    threads: int | None = None
    graph_optimization: bool = True
    memory_optimization: bool = False
    mkldnn: bool = True
    precision: Precision = Precision.FP32
    shared_threads: bool = False
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "device", parse(Device, self.device, what="device"))
        precision = parse(Precision, self.precision, what="precision")
        if precision not in RUNTIME_PRECISIONS:
            raise UserError(f"precision {precision.value!r} is not a run-time precision; an engine can be asked for "
                            f"{', '.join(p.value for p in RUNTIME_PRECISIONS)} (INT8 comes from a quantized model file)")
        object.__setattr__(self, "precision", precision)
        if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
            raise UserError(f"threads = {self.threads}: expected at least 1 (or None for the engine's default)")
        if self.input_shape is not None:
            dims = tuple(self.input_shape)
            if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
                raise UserError(f"input_shape = {self.input_shape}: expected positive whole dimensions, batch first, "
                                "e.g. (1, 3, 224, 224) (or None to keep the model's own)")
            object.__setattr__(self, "input_shape", dims)

    def replace(self, **changes) -> EngineOptions:
        return EngineOptions(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        """JSON-ready (enums as their strings)."""
        return {k: (v.value if isinstance(v, Device | Precision) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> EngineOptions:
        known = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in known]
        if unknown:
            raise UserError(f"unknown engine option {unknown[0]!r}{did_you_mean(unknown[0], known)}; "
                            f"known: {', '.join(known)}")
        if isinstance(data.get("input_shape"), list):
            data = {**data, "input_shape": tuple(data["input_shape"])}
        return cls(**data)


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, numpy dtype and shape (None for a dynamic dimension)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def shape_str(self) -> str:
        return "x".join("?" if d is None else str(d) for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": str(self.dtype), "shape": list(self.shape)}


def fixed_shape(inputs: list[TensorSpec], options: EngineOptions) -> tuple[int, ...] | None:
    """``options.input_shape`` checked against the model's one input (rank, static dimensions); None if not set."""
    shape = options.input_shape
    if shape is None:
        return None
    if len(inputs) != 1:
        raise UserError(f"input_shape fixes the shape of a single-input model; this one has {len(inputs)} inputs "
                        f"({', '.join(s.name for s in inputs)}): leave input_shape unset")
    spec = inputs[0]
    if len(shape) != len(spec.shape) or any(w is not None and d != w for d, w in zip(shape, spec.shape)):
        raise UserError(f"input_shape {'x'.join(map(str, shape))} does not fit input {spec.name!r} "
                        f"({spec.shape_str()}): give its static dimensions as they are and fix only the dynamic ones")
    return shape


@dataclass
class Session(ABC):
    """A model loaded on one engine. Use :meth:`run`; call :meth:`release` (or ``with``) when done."""

    engine: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    device: Device = "cpu"
    notes: list[str] = field(default_factory=list)  # options the engine could not honour, and why
    settings: dict = field(default_factory=dict)  # what the engine was actually set to, read back from it

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``feeds`` (input name → array); returns output name → array."""
        checked = self.check_feeds(feeds)
        outs = self._run(checked)
        return {spec.name: np.asarray(o) for spec, o in zip(self.outputs, outs)}

    def time(self, feeds: dict[str, np.ndarray], *, runs: int, warmup: int = 0,
             budget_s: float | None = None) -> Timing:
        """Time ``runs`` calls of :meth:`run` after ``warmup`` untimed ones (see :mod:`~edgedeploy.engines.timing`)."""
        return time_runs(self.run, feeds, runs=runs, warmup=warmup, budget_s=budget_s)

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate names, rank, dtype and static dimensions; say what the model expects."""
        expected = {s.name: s for s in self.inputs}
        unknown = [n for n in feeds if n not in expected]
        if unknown:
            raise UserError(
                f"input {unknown[0]!r} is not an input of this model; it expects "
                + ", ".join(f"{s.name} {s.dtype} {s.shape_str()}" for s in self.inputs)
            )
        missing = [n for n in expected if n not in feeds]
        if missing:
            raise UserError(f"input {missing[0]!r} was not given; the model expects {', '.join(expected)}")
        out = {}
        for name, arr in feeds.items():
            spec = expected[name]
            arr = np.asarray(arr)
            if arr.ndim != len(spec.shape):
                raise UserError(
                    f"input {name!r} has rank {arr.ndim} (shape {'x'.join(map(str, arr.shape))}); "
                    f"the model expects rank {len(spec.shape)} ({spec.shape_str()})"
                )
            bad = [i for i, (d, want) in enumerate(zip(arr.shape, spec.shape)) if want is not None and d != want]
            if bad:
                raise UserError(
                    f"input {name!r} has shape {'x'.join(map(str, arr.shape))}; the model expects "
                    f"{spec.shape_str()} (dimension {bad[0]} must be {spec.shape[bad[0]]})"
                )
            if arr.dtype != spec.dtype:
                raise UserError(
                    f"input {name!r} has dtype {arr.dtype}; the model expects {spec.dtype} "
                    f"(convert with .astype(np.{spec.dtype}))"
                )
            out[name] = np.ascontiguousarray(arr)
        return out

    def example_feeds(self, shape: tuple[int, ...] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs; dynamic dimensions take ``shape`` (or 1 for batch, 224 otherwise)."""
        rng = np.random.default_rng(seed)
        feeds = {}
        for spec in self.inputs:
            if shape is not None and len(self.inputs) == 1:
                dims = tuple(shape)
            else:
                dims = tuple(d if d is not None else (1 if i == 0 else 224) for i, d in enumerate(spec.shape))
            if np.issubdtype(spec.dtype, np.floating):
                feeds[spec.name] = rng.standard_normal(dims).astype(spec.dtype)
            else:
                feeds[spec.name] = rng.integers(0, 2, dims).astype(spec.dtype)
        return feeds

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Engine-specific inference on already-checked feeds; outputs in ``self.outputs`` order."""

    def clone_instance(self) -> Session:
        """Another handle on the same loaded model that may run concurrently with this one,
        sharing its weights (nothing is copied or re-read). Engines that cannot share refuse."""
        raise UserError(f"{self.engine} cannot share one model's weights between instances; use one instance")

    def release(self) -> None:
        """Free the engine's resources; the session cannot run afterwards."""
        self._release()

    def _release(self) -> None:  # engines override where they hold more than Python references
        pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Log a warning the first time ``key`` is seen in this process (e.g. 'no GPU, running on CPU')."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message)
