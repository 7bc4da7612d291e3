"""The rollout plan (YAML), validated once: every mistake is one line naming the key.

    name: lcnet-v2                 # the rollout's id
    model: lcnet                   # the model name on the devices
    version: 2                     # a new integer version (versions are immutable)
    artifact: lcnet_v2.onnx        # a model file or a (signed) deployment directory, relative to the plan
    golden: golden.npz             # optional: inputs "in:NAME" and reference outputs "out:NAME"
    config: {warmup: {x: 1x3x224x224}}   # optional: the version's serving config.yaml
    target: {group: port-a, labels: {zone: north}, hardware: x86}
    stages:
      - {name: canary, devices: 1}
      - {name: quarter, percent: 25, ab: {min_samples: 200, max_slowdown: 0.1}}   # an A/B stage
      - {name: all, percent: 100}
    gates: {golden_max_diff: 0.001, p99_ms: 50ms, rss_mb: 800MB, error_rate: 0.0}
    soak: 2s                       # serve this long after the swap before the error rate is read
    thresholds: {success: 100%, errors: 1}   # to proceed / to halt, per stage
    on_failure: rollback_stage     # halt | rollback_stage | rollback_all
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.fleet.gates import METRICS
from edgedeploy.units import parse_bytes, parse_duration_ms


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    group: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    hardware: str | None = None  # a substring of the device's hardware name or CPU, case-insensitive
    devices: list[str] | None = None

    def matches(self, device: dict) -> bool:
        hw = device.get("hardware") or {}
        return ((self.group is None or device.get("group") == self.group)
                and all((device.get("labels") or {}).get(k) == v for k, v in self.labels.items())
                and (self.hardware is None or self.hardware.lower() in f"{hw.get('name', '')} {hw.get('cpu', '')}".lower())
                and (self.devices is None or device.get("device") in self.devices))


class ABStage(BaseModel):
    """The stage's devices run the candidate while the rest of the target still runs the old version;
    the controller pools their request latencies and errors and decides with ``serve ab``'s statistics
    (Mann-Whitney U on latency, two-proportion z-test on errors): promote → next stage, rollback → the
    failure policy, too few samples → wait (up to the stage timeout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_samples: int = Field(default=100, ge=10)  # successful requests per side before deciding
    max_slowdown: float = Field(default=0.10, ge=0)  # median latency may grow this much (0.10: 10%)
    alpha: float = Field(default=0.05, gt=0, lt=1)


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = ""
    devices: int | None = Field(default=None, ge=1)
    percent: float | None = None
    ab: ABStage | None = None

    @model_validator(mode="after")
    def _one(self) -> Stage:
        if (self.devices is None) == (self.percent is None):
            raise ValueError("give exactly one of 'devices' (a count) or 'percent' (of the target, cumulative)")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ValueError(f"percent {self.percent:g} is outside (0, 100]: a stage cannot reach more than the whole target")
        return self

    def reach(self, total: int) -> int:
        """How many of ``total`` target devices run the new version once this stage is done (cumulative)."""
        return min(total, self.devices) if self.devices is not None else min(total, math.ceil(total * self.percent / 100))


def _percent(value) -> float:
    text = str(value).strip()
    number = float(text[:-1]) if text.endswith("%") else float(text) * (1 if float(text) > 1 else 100)
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is outside 0..100%")
    return number


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    success: float = 100.0  # percent of the stage's devices that must pass to proceed
    errors: int = Field(default=1, ge=1)  # failed devices that halt the rollout

    @field_validator("success", mode="before")
    @classmethod
    def _pct(cls, v):
        return _percent(v)


class RolloutPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    version: int = Field(ge=1)
    artifact: str
    golden: str | None = None
    config: dict | None = None
    target: Target = Field(default_factory=Target)
    stages: list[Stage] = Field(min_length=1)
    gates: dict[str, float] = Field(default_factory=dict)
    soak_s: float = Field(default=0.0, ge=0)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    on_failure: Literal["halt", "rollback_stage", "rollback_all"] = "rollback_stage"
    stage_timeout_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> RolloutPlan:
        last = 0.0
        for i, s in enumerate(self.stages):
            if s.percent is not None:
                if s.percent < last:
                    raise ValueError(f"stage {i + 1} ({s.name or 'unnamed'}): percent {s.percent:g} is below the "
                                     f"previous stage's {last:g}; stages are cumulative")
                last = s.percent
        return self


_SECTIONS = {"target": Target, "thresholds": Thresholds}
_KEYS = [*RolloutPlan.model_fields.keys(), "soak", "stage_timeout"]


def _check_keys(data: dict, known, where: str) -> None:
    for key in data:
        if key not in known:
            raise UserError(f"{where}: unknown key {key!r}{did_you_mean(key, known)}; known: {', '.join(known)}")


def _gate_value(metric: str, value) -> float:
    if metric.endswith("_ms") and isinstance(value, str):
        return parse_duration_ms(value, field=f"gates.{metric}")
    if metric == "rss_mb" and isinstance(value, str):
        return parse_bytes(value, field="gates.rss_mb") / 2**20
    return value


def parse_plan(data: dict, where: str = "plan") -> RolloutPlan:
    """Validate a plan given as a mapping; durations ("2s") and sizes ("800MB") are parsed here."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of plan keys, got {type(data).__name__}")
    _check_keys(data, _KEYS, where)
    data = dict(data)
    for alias, key in (("soak", "soak_s"), ("stage_timeout", "stage_timeout_s")):
        if alias in data:
            data[key] = parse_duration_ms(data.pop(alias), field=alias) / 1000
    for section, cls in _SECTIONS.items():
        if isinstance(data.get(section), dict):
            _check_keys(data[section], list(cls.model_fields), f"{where}: {section}")
    for i, stage in enumerate(data.get("stages") or []):
        if isinstance(stage, dict):
            _check_keys(stage, list(Stage.model_fields), f"{where}: stage {i + 1}")
            if isinstance(stage.get("ab"), dict):
                _check_keys(stage["ab"], list(ABStage.model_fields), f"{where}: stage {i + 1}: ab")
    gates = data.get("gates") or {}
    if not isinstance(gates, dict):
        raise UserError(f"{where}: gates: expected metric: limit pairs, got {gates!r}")
    for metric in gates:
        if metric not in METRICS:
            raise UserError(f"{where}: gate on unknown metric {metric!r}{did_you_mean(metric, METRICS)}; "
                            f"the device measures {', '.join(METRICS)}")
    data["gates"] = {m: _gate_value(m, v) for m, v in gates.items()}
    try:
        return RolloutPlan(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p + 1}]" for p in err["loc"]).replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{where}: {loc or 'plan'}: {msg}" + (f" (given {err['input']!r})" if loc else "")) from None


def load_plan(path: str | Path) -> tuple[RolloutPlan, Path]:
    """The plan in a YAML file and the directory its relative paths start from."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise UserError(f"plan {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"plan {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_plan(data, str(path)), p.resolve().parent
