"""The model card: the one place a model's input contract lives (size, layout, colours, scaling, task).

A card is a small YAML file, ``MODEL.card.yaml`` beside the model (or any file given as
``card=``)::

    input: images            # input name (default: the model's first input)
    size: [224, 224]         # height, width fed to the model (dynamic inputs: the size to use)
    layout: NCHW             # NCHW or NHWC
    color: RGB               # RGB, BGR or GRAY: the channel order the model was trained on
    scale: 0.00392156862745  # pixel (0..255) * scale, then (x - mean) / std, per channel
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    resize: stretch          # stretch | letterbox (keep ratio, pad with pad_value) | crop (keep ratio, centre crop)
    resize_short: 256        # crop only: the short side before the centre crop (default: just covers size)
    interpolation: linear    # nearest | linear | area | cubic | lanczos
    pad_value: 114
    task: classification     # edgedeploy.vocab.Task: classification, detection, segmentation, none, ...
    output_format: yolo      # detection only: yolo, ssd, db, ctc
    labels: [cat, dog]

Zoo models get theirs from the same schema (:func:`edgedeploy.cards.from_zoo`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgedeploy.vocab import Task


class Layout(StrEnum):
    """Where the channel axis is."""

    NCHW = "NCHW"
    NHWC = "NHWC"


class Color(StrEnum):
    """Channel order the model expects (images are read as BGR by OpenCV and converted)."""

    RGB = "RGB"
    BGR = "BGR"
    GRAY = "GRAY"


class Resize(StrEnum):
    """How an image of another size becomes ``size``."""

    STRETCH = "stretch"  # both axes scaled independently
    LETTERBOX = "letterbox"  # keep the aspect ratio, pad the rest with ``pad_value``
    CROP = "crop"  # keep the aspect ratio, scale the short side to fit, cut the centre


class Interpolation(StrEnum):
    """The resampling filter of the resize (OpenCV's)."""

    NEAREST = "nearest"
    LINEAR = "linear"
    AREA = "area"
    CUBIC = "cubic"
    LANCZOS = "lanczos"


class OutputFormat(StrEnum):
    """What a detector's (or recogniser's) outputs are."""

    YOLO = "yolo"  # N x (4 box [cx, cy, w, h] in pixels + objectness/classes)
    SSD = "ssd"  # boxes and scores as separate outputs
    DB = "db"  # a probability map (text detection)
    CTC = "ctc"  # per-step class scores (text recognition)


class ModelCard(BaseModel):
    """A model's input contract and, optionally, its task. Values are validated once, here."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    input: str | None = None
    size: tuple[int, int] | None = Field(default=None, description="height, width")
    dynamic: dict[str, tuple[int, int]] | None = Field(
        default=None, description="axis name (batch, height, width) -> [min, max] for dynamic export")
    layout: Layout = Layout.NCHW
    color: Color = Color.RGB
    scale: float = 1 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: Resize = Resize.STRETCH
    resize_short: int | None = Field(default=None, ge=1, description="crop: short side before the centre crop")
    interpolation: Interpolation = Interpolation.LINEAR
    pad_value: int = Field(default=114, ge=0, le=255)
    task: Task = Task.NONE
    output_format: OutputFormat | None = None
    labels: tuple[str, ...] = ()

    @field_validator("size")
    @classmethod
    def _positive(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError(f"size {list(v)}: height and width must be >= 1")
        return v

    @field_validator("layout", "color", mode="before")
    @classmethod
    def _upper(cls, v):
        return v.upper() if isinstance(v, str) else v

    @field_validator("std")
    @classmethod
    def _nonzero(cls, v):
        if any(s == 0 for s in v):
            raise ValueError(f"std {list(v)}: a zero would divide by zero")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        n = self.channels
        for key in ("mean", "std"):
            if len(getattr(self, key)) not in (1, n):
                raise ValueError(f"{key} has {len(getattr(self, key))} values; color {self.color.value} has {n} "
                                 f"channel(s): give 1 or {n}")
        if self.output_format is not None and self.task not in (Task.DETECTION, Task.DET, Task.LAYOUT, Task.REC):
            raise ValueError(f"output_format {self.output_format.value} is for detection/recognition models; "
                             f"task is {self.task.value}")
        if self.resize_short is not None and (self.resize is not Resize.CROP or
                                              (self.size is not None and self.resize_short < min(self.size))):
            raise ValueError(f"resize_short {self.resize_short} is for resize crop, and at least the size's short side")
        if self.dynamic:
            bad = set(self.dynamic) - {"batch", "height", "width"}
            if bad:
                raise ValueError(f"dynamic axes {sorted(bad)}: expected batch, height or width")
            for k, (lo, hi) in self.dynamic.items():
                if not 1 <= lo <= hi:
                    raise ValueError(f"dynamic {k} [{lo}, {hi}]: expected 1 <= min <= max")
        return self

    @property
    def channels(self) -> int:
        return 1 if self.color is Color.GRAY else 3

    def describe(self) -> str:
        """One line: what the card says the model expects."""
        size = "x".join(map(str, self.size)) if self.size else "model's size"
        return (f"{self.color.value} {self.layout.value} {size} ({self.resize.value}), (px*{self.scale:.6g}-mean)/std "
                f"mean={list(self.mean)} std={list(self.std)}, task {self.task.value}")
