"""The deployment YAML (seed 000's ``deployment_config.yaml``), typed and validated once.

The seed's three sections are accepted exactly as written there::

    deployment:   hardware, precision, batch_size, memory_optimization, operator_fusion, thread_num
    performance:  target_latency, max_memory, power_consumption
    monitoring:   enable, metrics, log_level

plus what deploying needs: ``model`` (a path, relative to the YAML, or a zoo name), ``params``
(Paddle), ``deployment.engines`` (allowed engines), ``deployment.input_shape``, an
``evaluation`` section (accuracy control) and a ``search`` section (measurement effort).

How the tuner reads the seed's knobs — each is a *limit you allow*, or ``auto``, or a list:

- ``precision: int8`` — int8 is acceptable; fp16/bf16/fp32 are tried too (more precise is never
  worse for accuracy), and the winner is whichever meets the targets best. A list: only those.
- ``thread_num: 4`` — at most 4 threads (1..4 are tried, capped at this machine's cores).
- ``batch_size: 1`` — at most 1; with ``4``, batches 1, 2 and 4 are tried and throughput decides.
- ``memory_optimization`` and ``operator_fusion`` are honoured as written, in every measured
  plan and in the deployment (``doctor`` says when changing them would help).
- ``performance.estimated: warn|fail|ignore`` (default warn): what a target means when its figure
  can only be estimated here (power without a sensor): reported as unverifiable and passed,
  counted as not met, or passed silently. An estimate never steers the choice.

Units go through :mod:`edgedeploy.units`; unknown keys get a did-you-mean and the YAML line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgedeploy import units
from edgedeploy.errors import UserError, did_you_mean

PRECISION_ORDER = ("int8", "bf16", "fp16", "fp32")  # least to most precise
METRICS = ("latency", "memory", "throughput", "power", "cpu")


def _unit(kind: str, name: str):
    def check(value):
        if value is None:
            return None
        try:
            parsed = units.parse_quantity(value, kind, field=name)
        except UserError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None
        return int(round(parsed)) if kind == "size" else parsed

    return check


def _choices(value, name: str, *, allowed: tuple | None = None, minimum: int | None = None,
             maximum: int | None = None) -> list | str:
    """A single value, a list of values, or "auto" → "auto" or a non-empty list, each value checked."""
    if value == "auto":
        return "auto"
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError("expected a value, a list of values, or auto")
    for v in values:
        if allowed is not None and v not in allowed:
            raise ValueError(f"{v!r} is not one of {', '.join(allowed)} (or auto){did_you_mean(str(v), allowed)}")
        if minimum is not None:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{v!r} is not a whole number (or auto)")
            if v < minimum or (maximum is not None and v > maximum):
                raise ValueError(f"{v} is impossible: expected {minimum}..{maximum}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deployment(_Strict):
    hardware: str = "local"
    precision: list[str] | Literal["auto"] = "auto"
    batch_size: list[int] | Literal["auto"] = [1]
    memory_optimization: bool = False
    operator_fusion: bool = True
    thread_num: list[int] | Literal["auto"] = "auto"
    engines: list[str] | None = None
    input_shape: str | None = None

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v):
        return _choices(v, "precision", allowed=PRECISION_ORDER)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch(cls, v):
        return _choices(v, "batch_size", minimum=1, maximum=1024)

    @field_validator("thread_num", mode="before")
    @classmethod
    def _threads(cls, v):
        return _choices(v, "thread_num", minimum=1, maximum=1024)

    @field_validator("engines", mode="before")
    @classmethod
    def _engines(cls, v):
        from edgedeploy import engines

        if v is None:
            return None
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"engines: expected an engine name or a list of them, got {v!r}")
        for e in v:
            if not isinstance(e, str) or e not in engines.ENGINES:
                raise ValueError(f"unknown engine {e!r}{did_you_mean(str(e), engines.ENGINES)}; "
                                 f"known: {', '.join(engines.ENGINES)}")
        return v

    @field_validator("hardware")
    @classmethod
    def _hardware(cls, v):
        from edgedeploy.hardware import get

        try:
            return get(v).key if v.lower() not in ("local", "this", "localhost") else "local"
        except UserError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, v):
        from edgedeploy.util import parse_shape

        if v is not None:
            try:
                parse_shape(str(v))
            except UserError as exc:
                raise ValueError(str(exc).replace("--shape", "input_shape")) from None
        return v

    def precisions(self) -> list[str]:
        """The precisions to try: a single value is the least precise allowed; a list is exact."""
        if self.precision == "auto":
            return list(PRECISION_ORDER)
        if len(self.precision) == 1:
            return list(PRECISION_ORDER[PRECISION_ORDER.index(self.precision[0]):])
        return list(self.precision)

    def threads(self, cores: int) -> list[int]:
        if self.thread_num == "auto":
            top = cores
        elif len(self.thread_num) == 1:
            top = self.thread_num[0]
        else:
            return sorted({min(t, cores) for t in self.thread_num})
        return sorted({t for t in (1, 2, 4, 8, 16, 32, top) if t <= min(top, cores)} | {min(top, cores)})

    def batches(self) -> list[int]:
        if self.batch_size == "auto":
            return [1, 2, 4, 8]
        if len(self.batch_size) == 1:
            top = self.batch_size[0]
            return sorted({b for b in (1, 2, 4, 8, 16, 32, 64) if b <= top} | {top})
        return sorted(set(self.batch_size))


class Performance(_Strict):
    target_latency: float | None = None  # ms
    max_memory: int | None = None  # bytes
    power_consumption: float | None = None  # W
    latency_statistic: Literal["p50", "p90", "p99"] = "p50"
    # a target whose figure can only be estimated here (power without a sensor): warn (report it as
    # unverifiable, pass), fail (an unverifiable target is not met) or ignore (do not mention it)
    estimated: Literal["warn", "fail", "ignore"] = "warn"

    _lat = field_validator("target_latency", mode="before")(classmethod(lambda cls, v: _unit("duration", "target_latency")(v)))
    _mem = field_validator("max_memory", mode="before")(classmethod(lambda cls, v: _unit("size", "max_memory")(v)))
    _pow = field_validator("power_consumption", mode="before")(
        classmethod(lambda cls, v: _unit("power", "power_consumption")(v)))


class Monitoring(_Strict):
    enable: bool = False
    metrics: list[str] = Field(default_factory=lambda: ["latency", "memory", "throughput"])
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    interval: int = Field(100, ge=1, description="report the metrics every this many inferences")

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v):
        for m in v:
            if m not in METRICS:
                raise ValueError(f"unknown metric {m!r}{did_you_mean(m, METRICS)}; known: {', '.join(METRICS)}")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, v):
        return v.lower() if isinstance(v, str) else v


class Evaluation(_Strict):
    enable: bool = True
    dataset: str = "auto"
    samples: int = Field(16, ge=1, le=10_000)
    max_accuracy_drop: float = 0.01  # absolute, 0..1
    calibration: str | None = None  # INT8 calibration data: image folder, class folders, CSV, video, .npy/.npz
    data: str | None = None  # evaluation data (labelled: top-1); default: the held-out part of calibration

    @field_validator("max_accuracy_drop", mode="before")
    @classmethod
    def _drop(cls, v):
        if isinstance(v, str) and v.strip().endswith("%"):
            v = float(v.strip()[:-1]) / 100
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"{v!r}: expected a fraction below 1 (0.01) or a percentage (1%)")
        return float(v)


class Search(_Strict):
    runs: int = Field(30, ge=3, le=10_000)
    time_budget: float = 3000.0  # ms of timed runs per configuration
    screen_runs: int = Field(8, ge=3, le=1000)
    repeats: int = Field(3, ge=1, le=20, description="fresh-process measurements of the chosen plan for the verdict")
    timeout: float = 300_000.0  # ms per configuration

    _tb = field_validator("time_budget", mode="before")(classmethod(lambda cls, v: _unit("duration", "time_budget")(v)))
    _to = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _unit("duration", "timeout")(v)))


class DeploymentConfig(_Strict):
    model: str
    params: str | None = None
    card: str | None = None  # model card YAML (edgedeploy.cards); default: MODEL.card.yaml beside the model
    deployment: Deployment = Deployment()
    performance: Performance = Performance()
    monitoring: Monitoring = Monitoring()
    evaluation: Evaluation = Evaluation()
    search: Search = Search()

    @model_validator(mode="after")
    def _possible(self):
        """Targets the named device cannot meet by construction are refused here, not after a search."""
        from edgedeploy.hardware import get

        hw = get(self.deployment.hardware)
        if self.performance.max_memory and hw.memory_bytes.value and self.performance.max_memory > hw.memory_bytes.value:
            raise ValueError(f"performance.max_memory {units.fmt_bytes(self.performance.max_memory)} exceeds "
                             f"{hw.key}'s {units.fmt_bytes(hw.memory_bytes.value)} ({hw.memory_bytes.basis})")
        if self.performance.power_consumption and hw.power_w and self.performance.power_consumption < hw.power_w[0]:
            raise ValueError(f"performance.power_consumption {self.performance.power_consumption:g} W is below "
                             f"{hw.key}'s lowest power mode ({hw.power_w[0]:g} W, {hw.power_basis}); raise it or pick "
                             "another device (`edgedeploy devices --recommend`)")
        return self

    def resolved(self) -> dict[str, Any]:
        """The config with every unit in canonical form (ms, bytes, W), for the deployment record."""
        return self.model_dump(mode="json")


def _key_lines(text: str) -> dict[tuple, int]:
    """YAML key path → 1-based line number, for error messages."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = (*path, k.value)
                lines[p] = k.start_mark.line + 1
                walk(v, p)

    walk(root, ())
    return lines


def _known_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = DeploymentConfig
    for part in loc[:-1]:
        f = model.model_fields.get(part)
        ann = getattr(f, "annotation", None) if f else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def parse(data: Any, *, source: str = "config", text: str = "") -> DeploymentConfig:
    """Validate ``data`` (the parsed YAML); every problem becomes one :class:`UserError` line."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with model, deployment, performance, monitoring; "
                        f"got {type(data).__name__}")
    try:
        return DeploymentConfig(**data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = tuple(str(p) for p in first["loc"] if not isinstance(p, int))
        line = _key_lines(text).get(loc) if text else None
        where = f"{source}{f' line {line}' if line else ''}: {'.'.join(loc) or 'config'}"
        if first["type"] == "extra_forbidden":
            known = _known_keys(loc)
            msg = f"unknown key{did_you_mean(loc[-1], known)}; known keys here: {', '.join(known)}"
        elif first["type"] == "missing":
            msg = "is required" + (" (a model path or zoo name, e.g. model: pplcnet-orientation)" if loc == ("model",) else "")
        else:
            msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise UserError(f"{where}: {msg}{more}") from None


def load(path: str | Path, *, check_model: bool = True) -> DeploymentConfig:
    """Read and validate a deployment YAML. A relative ``model`` path is relative to the YAML file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"deployment config {path} not found; expected a YAML file like examples/deployment_config.yaml")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{path}{f' line {mark.line + 1}' if mark else ''}: not valid YAML "
                        f"({getattr(exc, 'problem', None) or exc})") from None
    cfg = parse(data, source=str(path), text=text)
    model = cfg.model
    candidate = (path.parent / model).expanduser()
    if not Path(model).is_absolute() and candidate.exists():
        cfg = cfg.model_copy(update={"model": str(candidate.resolve())})
    if cfg.params and not Path(cfg.params).is_absolute() and (path.parent / cfg.params).exists():
        cfg = cfg.model_copy(update={"params": str((path.parent / cfg.params).resolve())})
    if check_model:
        from edgedeploy.ingest import load_model

        try:
            load_model(cfg.model, cfg.params)
        except UserError as exc:
            raise UserError(f"{path} line {_key_lines(text).get(('model',), '?')}: model: {exc}") from None
    return cfg
