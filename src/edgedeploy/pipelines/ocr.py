"""The OCR system (det → cls → rec) as pipeline stages, so the three models run concurrently:
detection works on page n+1 while recognition reads page n.

Stages share what they find through the frame's typed fields (:class:`~edgedeploy.pipelines.stage.Frame`):
``boxes`` ((N,4,2) float32 quads in the full frame's pixels, reading order) and ``det_scores``
from :class:`DetectStage`; ``crops`` (upright line images) from :class:`ClsStage`; ``lines`` (a
list of :class:`~edgedeploy.tasks.OCRLine`) from :class:`RecognizeStage`, which also puts one
``{"type": "ocr", ...}`` event per frame for the sinks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.pipelines.models import model_speedups, open_model
from edgedeploy.pipelines.stage import Frame, Stage
from edgedeploy.presets import FAST, stage_path
from edgedeploy.tasks import OCRLine, crop_quad


def load_task(task: str, model: str, *, stage: Stage, path: str | Path | None = None, engine: str = "auto",
              threads: int | None = 1, precision: str = "fp32", reduced_precision: bool = True, pipeline=None,
              **options):
    """The task object (``edgedeploy.tasks``) for ``stage``'s model, opened through its deployment plan
    (:func:`edgedeploy.pipelines.models.open_model`); what was opened and why goes to ``stage.opened``.

    ``model``: a zoo name or a deployment directory. ``path``: run this model file instead of the
    zoo's (e.g. an INT8 copy), keeping the zoo model's preprocessing and dictionary. ``precision``:
    the float arithmetic a named engine may use ("fp32", "bf16", "fp16").
    """
    obj, stage.opened = open_model(task, model, stage=stage.name, path=str(path) if path else None, engine=engine,
                                   threads=threads, precision=precision, reduced_precision=reduced_precision,
                                   trusted_keys=getattr(pipeline, "trusted_keys", None), **options)
    return obj


class DetectStage(Stage):
    """Text detection (DB). ``roi`` (x0, y0, x1, y1 as fractions) limits it to part of the frame;
    ``limit_side_len``/``limit_type`` set the size the model sees (e.g. 320/"max" to detect on a
    downscaled frame). Boxes are returned in full-frame pixels."""

    budget_share = 0.5

    def __init__(self, *, model: str = "ppocrv6-det", path: str | None = None, engine: str = "auto",
                 threads: int | None = 1, roi: tuple[float, float, float, float] | None = None,
                 name: str = "detect", precision: str = "fp32", reduced_precision: bool = True, **det_options):
        self.model, self.path, self.engine, self.threads = model, path, engine, threads
        self.precision, self.reduced_precision, self.opened = precision, reduced_precision, None
        self.roi, self.det_options, self.name = roi, det_options, name
        self.det = None

    def open(self, pipeline) -> None:
        if self.det is None:  # opened once: a stage object can run in several pipelines
            self.det = load_task("det", self.model, stage=self, path=self.path, engine=self.engine,
                                 threads=self.threads, precision=self.precision,
                                 reduced_precision=self.reduced_precision, pipeline=pipeline, **self.det_options)

    def speedups(self) -> list[str]:
        return model_speedups(self)

    def process(self, frame: Frame) -> Frame:
        image = frame.image
        x0 = y0 = 0
        if self.roi is not None:
            h, w = image.shape[:2]
            x0, y0 = int(self.roi[0] * w), int(self.roi[1] * h)
            image = image[y0:int(self.roi[3] * h), x0:int(self.roi[2] * w)]
        result = self.det(image)
        boxes = result.boxes + np.array([x0, y0], np.float32)
        if frame.roi is not None:  # a resize stage ran before: map back to the full frame
            rx, ry, scale = frame.roi
            boxes = boxes / scale + np.array([rx, ry], np.float32)
        frame.boxes, frame.det_scores = boxes.astype(np.float32), result.scores
        return frame


class ClsStage(Stage):
    """Cut each detected line out upright and turn the upside-down ones (0/180 classifier)."""

    def __init__(self, *, model: str = "ppocr-cls", path: str | None = None, engine: str = "auto",
                 threads: int | None = 1, name: str = "cls", precision: str = "fp32", reduced_precision: bool = True,
                 **cls_options):
        self.model, self.path, self.engine, self.threads = model, path, engine, threads
        self.precision, self.reduced_precision, self.opened = precision, reduced_precision, None
        self.cls_options, self.name = cls_options, name
        self.cls = None

    def open(self, pipeline) -> None:
        if self.cls is None:
            self.cls = load_task("cls", self.model, stage=self, path=self.path, engine=self.engine,
                                 threads=self.threads, precision=self.precision,
                                 reduced_precision=self.reduced_precision, pipeline=pipeline, **self.cls_options)

    def process(self, frame: Frame) -> Frame:
        image = frame.full_image
        crops = [crop_quad(image, q) for q in frame.text_boxes()]
        if crops:
            crops = self.cls.upright(crops, self.cls(crops))
        frame.crops = crops
        return frame


class RecognizeStage(Stage):
    """Read each line (CTC). Lines below ``text_score`` mean probability, or empty, are dropped."""

    def __init__(self, *, model: str = "ppocrv6-rec", path: str | None = None, engine: str = "auto",
                 threads: int | None = 1, text_score: float = 0.5, emit: bool = True, name: str = "rec",
                 precision: str = "fp32", reduced_precision: bool = True, **rec_options):
        self.model, self.path, self.engine, self.threads = model, path, engine, threads
        self.precision, self.reduced_precision, self.opened = precision, reduced_precision, None
        self.text_score, self.emit, self.rec_options, self.name = text_score, emit, rec_options, name
        self.rec = None

    def open(self, pipeline) -> None:
        if self.rec is None:
            self.rec = load_task("rec", self.model, stage=self, path=self.path, engine=self.engine,
                                 threads=self.threads, precision=self.precision,
                                 reduced_precision=self.reduced_precision, pipeline=pipeline, **self.rec_options)

    def process(self, frame: Frame) -> Frame:
        boxes = frame.text_boxes()
        crops = frame.crops
        if crops is None:  # no cls stage: cut the lines out here
            image = frame.full_image
            crops = [crop_quad(image, q) for q in boxes]
        result = self.rec(crops)
        lines = [OCRLine(b, t, s) for b, t, s in zip(boxes, result.texts, result.scores)
                 if t.strip() and s >= self.text_score]
        frame.lines = lines
        if self.emit:
            frame.events.append({
                "type": "ocr", "frame": frame.index, "source": frame.path or frame.source,
                "lines": [{"text": ln.text, "score": round(float(ln.score), 4),
                           "box": np.round(ln.box, 1).tolist()} for ln in lines]})
        return frame


def ocr_stages(*, engine: str = "auto", threads: int = 1, use_cls: bool = True,
               det_options: dict | None = None, preset: str | None = None) -> list[Stage]:
    """The OCR system as three stages (det → cls → rec), ready for a :class:`Pipeline`.

    preset: None (FP32 zoo models, task defaults) or "fast" (:data:`edgedeploy.presets.FAST`:
    INT8 det made once and cached, BF16 rec, tight rec batching; ``engine`` "auto" is then the
    engine it was measured on, "openvino"). ``det_options`` add to the preset's.
    """
    if preset is None:
        stages: list[Stage] = [DetectStage(engine=engine, threads=threads, **(det_options or {}))]
        if use_cls:
            stages.append(ClsStage(engine=engine, threads=threads))
        stages.append(RecognizeStage(engine=engine, threads=threads))
        return stages
    if preset != "fast":
        raise UserError(f"OCR preset {preset!r} is not known; choose 'fast' or leave it out")
    engine = FAST.engine if engine == "auto" else engine  # the preset was measured on its own engine

    def kwargs(stage):
        path, precision = stage_path(stage, engine)
        return {"model": stage.model, "path": str(path) if path else None, "precision": precision,
                "engine": engine, "threads": threads, **stage.options}

    stages = [DetectStage(**{**kwargs(FAST.det), **(det_options or {})})]
    if use_cls and FAST.cls is not None:
        stages.append(ClsStage(**kwargs(FAST.cls)))
    stages.append(RecognizeStage(**kwargs(FAST.rec)))
    return stages
