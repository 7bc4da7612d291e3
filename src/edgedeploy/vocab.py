"""The project's one vocabulary: engines, precisions, devices and tasks as ``StrEnum`` s.

Library and CLI use these same types (typer shows their values as the choices in ``--help``
and refuses anything else while parsing). What each engine *can* do stays in the one
capability table, :data:`edgedeploy.engines.ENGINES`; this module only names things.
A ``StrEnum`` member compares equal to its string, so configs and JSON written before keep
working: ``Engine.OPENVINO == "openvino"``.
"""

from __future__ import annotations

from enum import StrEnum

from edgedeploy.errors import UserError, did_you_mean


class Engine(StrEnum):
    """An inference engine edgedeploy drives (``AUTO``: choose by measuring or by format)."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    PADDLE = "paddle"
    NCNN = "ncnn"
    AUTO = "auto"


class Precision(StrEnum):
    """Numeric precision of a deployment. ``AUTO``: let the tuner choose by measurement."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    AUTO = "auto"


#: precisions an engine applies at run time to an FP32 model (INT8 needs a quantized file)
RUNTIME_PRECISIONS: tuple[Precision, ...] = (Precision.FP32, Precision.BF16, Precision.FP16)


class Device(StrEnum):
    """Where an engine runs."""

    CPU = "cpu"
    GPU = "gpu"


class Task(StrEnum):
    """What a model's outputs mean (decides its decoder and accuracy metric)."""

    DET = "det"
    REC = "rec"
    CLS = "cls"
    ORIENTATION = "orientation"
    LAYOUT = "layout"
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"
    NONE = "none"


class CalibrationMethod(StrEnum):
    """How INT8 activation ranges are calibrated."""

    DEFAULT = "default"
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


def parse(enum: type[StrEnum], value, *, what: str | None = None) -> StrEnum:
    """``value`` as a member of ``enum``, or a :class:`UserError` naming the choices."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        choices = [m.value for m in enum]
        label = what or enum.__name__.lower()
        raise UserError(f"{label} {value!r}{did_you_mean(str(value), choices)}; "
                        f"choose one of {', '.join(choices)}") from None
