"""Pipelines defined in YAML, validated once, with a "did you mean" for every unknown name.

    name: gate
    source: {url: gate.mp4, realtime: true}     # file, rtsp://..., http://..., /dev/video0, or a folder of images
    drop: latest                                # latest (latest-frame-wins) | block | omitted: by source
    queue_size: 1
    metrics: {port: 9108}                       # Prometheus at http://127.0.0.1:9108/metrics
    budget: {shares: {detect: 0.5, read: 0.35}} # of the frame interval (40 ms at 25 FPS); reported per stage
    stages:
      - {type: detect, engine: auto, limit_type: max, limit_side_len: 320}   # or model: DEPLOYMENT_DIR
      - {type: container_read}
      - {type: container_track, snapshots: out/snapshots}
    sinks:
      - {type: jsonl, path: out/events.jsonl}
      - {type: mqtt, host: 127.0.0.1, port: 1883, topic: gate/events, spool_dir: out/spool}

A stage's or sink's keys are the keyword arguments of its class (``STAGES``/``SINKS`` map
each type to its class); their types come from its signature, so the table below is the only list.
Relative paths in the file are relative to the current directory. Times are in seconds.

A ``python`` stage runs code named in the file (``target: "module:attr"``), so a YAML file could
name any importable function (``os:system``): such stages are refused unless their module is in
``allow_python``, which comes from whoever runs the pipeline (``--allow-python MODULE``), never
from the file itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.pipelines.budget import Budget
from edgedeploy.pipelines.camera import PythonStage
from edgedeploy.pipelines.gate import ReadStage, TrackerStage
from edgedeploy.pipelines.ocr import ClsStage, DetectStage, RecognizeStage
from edgedeploy.pipelines.runtime import Pipeline
from edgedeploy.pipelines.mqtt import MqttSink
from edgedeploy.pipelines.sinks import JsonlSink, VideoSink, WebhookSink
from edgedeploy.pipelines.sources import ImageFolderSource, is_stream, open_source
from edgedeploy.pipelines.stage import Sink, Stage
from edgedeploy.pipelines.stages import ResizeStage, RuleStage
from edgedeploy.tasks.cls import ClsOptions
from edgedeploy.tasks.det import DetOptions
from edgedeploy.tasks.rec import RecOptions

# type → class. Each class's keyword-only arguments are the keys its YAML entry takes.
STAGES: dict[str, type[Stage]] = {
    "resize": ResizeStage,
    "detect": DetectStage,
    "cls": ClsStage,
    "recognize": RecognizeStage,
    "container_read": ReadStage,
    "container_track": TrackerStage,
    "rule": RuleStage,
    "python": PythonStage,
}
SINKS: dict[str, type[Sink]] = {
    "jsonl": JsonlSink,
    "mqtt": MqttSink,
    "webhook": WebhookSink,
    "video": VideoSink,
}
# Stages that take a task's options (**kwargs) accept that options dataclass's fields too.
_TASK_OPTIONS: dict[type[Stage], type] = {DetectStage: DetOptions, ClsStage: ClsOptions, RecognizeStage: RecOptions}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    """Where frames come from. ``url``: video file, stream URL, ``/dev/videoN`` or image folder."""

    url: str
    realtime: bool = False
    fps: float | None = Field(None, gt=0)
    reconnect: bool | None = None
    max_reconnects: int = 5
    backoff: tuple[float, float] = (0.5, 8.0)
    open_timeout: float = 5.0
    read_timeout: float = 5.0


class MetricsConfig(_Strict):
    port: int | None = Field(None, ge=0, le=65535)
    addr: str = "127.0.0.1"


class BudgetConfig(_Strict):
    """The latency budget: ``fps`` (None: the source's) and stage name → share of the frame interval."""

    fps: float | None = None
    shares: dict[str, float] = {}


class PipelineConfig(_Strict):
    """A whole pipeline; ``stages``/``sinks`` hold each entry's ``type`` and its checked keys.
    ``trusted_keys``: a ``.pub`` file or key folder that stages' deployment directories must be signed with."""

    name: str = "pipeline"
    source: SourceConfig
    drop: Literal["latest", "block"] | None = None
    queue_size: int = 1
    metrics: MetricsConfig = MetricsConfig()
    budget: BudgetConfig = BudgetConfig()
    trusted_keys: str | None = None
    stages: list[dict[str, Any]]
    sinks: list[dict[str, Any]] = []


def _fields(cls) -> dict[str, tuple[Any, Any]]:
    """The YAML keys ``cls`` takes: its keyword arguments (and its task options), typed."""
    hints = typing.get_type_hints(cls.__init__)
    fields: dict[str, tuple[Any, Any]] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        fields[p.name] = (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
    if cls in _TASK_OPTIONS:
        options = _TASK_OPTIONS[cls]
        ohints = typing.get_type_hints(options)
        for f in dataclasses.fields(options):
            fields.setdefault(f.name, (ohints[f.name], f.default))
    return fields


def _check(kind: str, where: str, entry: dict, table: dict[str, type]) -> tuple[type, dict]:
    """Validate one stage/sink entry; return its class and checked keyword arguments."""
    if not isinstance(entry, dict) or "type" not in entry:
        raise UserError(f"{where}: expected a mapping with a 'type' ({', '.join(table)}), got {entry!r}")
    entry = dict(entry)
    type_ = str(entry.pop("type"))
    if type_ not in table:
        raise UserError(f"{where}: unknown {kind} type {type_!r}{did_you_mean(type_, table)}; "
                        f"known: {', '.join(table)}")
    cls = table[type_]
    fields = _fields(cls)
    for key in entry:
        if key not in fields:
            raise UserError(f"{where} ({type_}): unknown key {key!r}{did_you_mean(key, fields)}; "
                            f"it takes {', '.join(fields)}")
    model = create_model(f"{cls.__name__}Config", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                         **fields)
    try:
        checked = model(**entry)
    except ValidationError as exc:
        raise UserError(f"{where} ({type_}): {_first_error(exc)}") from None
    for key, ok, expected in (("port", lambda v: 0 <= v <= 65535, "0..65535"), ("fps", lambda v: v > 0, "above 0")):
        if isinstance(entry.get(key), (int, float)) and not ok(entry[key]):
            raise UserError(f"{where} ({type_}): {key} {entry[key]!r} is out of range; expected {expected}")
    return cls, {k: getattr(checked, k) for k in entry}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']} (given {err.get('input')!r})"


def check_python_stage(where: str, entry: dict, allow_python: Sequence[str]) -> None:
    """Refuse a ``python`` stage whose target's module is not ``allow_python``'s (or under one)."""
    if entry.get("type") != "python":
        return
    target = str(entry.get("target", ""))
    module = target.partition(":")[0]
    if not any(module == m or module.startswith(m + ".") for m in allow_python):
        allowed = ", ".join(allow_python) or "none given"
        raise UserError(f"{where} (python): target {target!r} is refused: python stages run only modules in "
                        f"allow_python ({allowed}); allow module {module!r} only if you trust it")


def load_config(path: str | Path, *, source: str | None = None, allow_python: Sequence[str] = ()) -> PipelineConfig:
    """Read and validate a pipeline YAML; ``source`` replaces its ``source.url``; ``python``
    stages are refused unless their module is in ``allow_python`` (module names; off by default)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pipeline config {path} does not exist; see examples/pipelines/*.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with source, stages and sinks")
    if source is not None:
        data.setdefault("source", {})
        if not isinstance(data["source"], dict):
            data["source"] = {}
        data["source"]["url"] = source
    known = PipelineConfig.model_fields
    for key in data:
        if key not in known:
            raise UserError(f"{path}: unknown key {key!r}{did_you_mean(key, known)}; known: {', '.join(known)}")
    for key in data["source"] if isinstance(data.get("source"), dict) else {}:  # not a mapping: pydantic says so
        if key not in SourceConfig.model_fields:
            raise UserError(f"{path}: source: unknown key {key!r}{did_you_mean(key, SourceConfig.model_fields)}; "
                            f"known: {', '.join(SourceConfig.model_fields)}")
    try:
        config = PipelineConfig(**data)
    except ValidationError as exc:
        raise UserError(f"{path}: {_first_error(exc)}") from None
    if not config.stages:
        raise UserError(f"{path}: a pipeline needs at least one stage")
    for i, entry in enumerate(config.stages):  # check all now: fail before any model loads
        _check("stage", f"{path}: stages[{i}]", entry, STAGES)
        check_python_stage(f"{path}: stages[{i}]", entry, allow_python)
    for i, entry in enumerate(config.sinks):
        _check("sink", f"{path}: sinks[{i}]", entry, SINKS)
    return config


def build_pipeline(config: PipelineConfig, *, allow_python: Sequence[str] = ()):
    """The :class:`~edgedeploy.pipelines.runtime.Pipeline` a validated config describes
    (``python`` stages only from modules in ``allow_python``)."""
    s = config.source
    if not is_stream(s.url) and Path(s.url).is_dir():
        source = ImageFolderSource(s.url, fps=s.fps)
    else:
        options = dict(realtime=s.realtime, reconnect=s.reconnect, max_reconnects=s.max_reconnects,
                       backoff=s.backoff, open_timeout=s.open_timeout, read_timeout=s.read_timeout)
        if s.url.startswith("/dev/video"):
            options.pop("realtime")
            options["fps"] = int(s.fps) if s.fps else None
        source = open_source(s.url, **options)
    stages = []
    for i, entry in enumerate(config.stages):
        cls, kwargs = _check("stage", f"stages[{i}]", entry, STAGES)
        check_python_stage(f"stages[{i}]", entry, allow_python)
        stages.append(cls(**kwargs))
    sinks = []
    for i, entry in enumerate(config.sinks):
        cls, kwargs = _check("sink", f"sinks[{i}]", entry, SINKS)
        sink = cls(**kwargs)
        if sum(1 for x in sinks if x.name == sink.name):
            sink.name = f"{sink.name}{i}"
        sinks.append(sink)
    pipeline = Pipeline(source, stages, sinks, name=config.name, queue_size=config.queue_size, drop=config.drop,
                        budget=Budget(fps=config.budget.fps, shares=config.budget.shares),
                        trusted_keys=config.trusted_keys)
    if config.metrics.port is not None:
        pipeline.metrics.serve(config.metrics.port, config.metrics.addr)
    return pipeline


def run_config(path: str | Path, *, source: str | None = None, max_frames: int | None = None,
               duration: float | None = None, on_stats=None, stats_every: float = 2.0,
               allow_python: Sequence[str] = (), on_start=None):
    """Load, build and run the pipeline in ``path``; returns its :class:`PipelineReport`."""
    config = load_config(path, source=source, allow_python=allow_python)
    pipeline = build_pipeline(config, allow_python=allow_python)
    return pipeline.run(max_frames=max_frames, duration=duration, on_stats=on_stats, stats_every=stats_every,
                        on_start=on_start)
