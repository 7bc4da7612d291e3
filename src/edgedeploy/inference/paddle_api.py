"""The module-level parts of Paddle Inference's API: ``PrecisionType``, ``get_version``,
``PredictorPool``, and why TensorRT cannot run where there is no NVIDIA GPU."""

from __future__ import annotations

import importlib.metadata
from enum import IntEnum
from typing import TYPE_CHECKING

from edgedeploy.errors import UserError
from edgedeploy.vocab import Precision

if TYPE_CHECKING:
    from edgedeploy.inference import Config, Predictor


class PrecisionType(IntEnum):
    """Paddle's ``PrecisionType`` (same names and values); ``.precision`` is edgedeploy's word."""

    Float32 = 0
    Int8 = 1
    Half = 2
    Bfloat16 = 3

    @property
    def precision(self) -> Precision:
        return {0: Precision.FP32, 1: Precision.INT8, 2: Precision.FP16, 3: Precision.BF16}[self.value]


def get_version() -> str:
    """edgedeploy's version and each installed engine's, one per line (Paddle prints its build's)."""
    from edgedeploy import __version__, engines

    lines = [f"edgedeploy version: {__version__}"]
    for name, spec in engines.ENGINES.items():
        if engines.available(name):
            dist = {"paddle": "paddlepaddle"}.get(spec.package, spec.package)
            try:
                lines.append(f"{name} version: {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                lines.append(f"{name} version: unknown")
    return "\n".join(lines)


def tensorrt_note(use_gpu: bool) -> str | None:
    """None when TensorRT can run here (GPU asked for, ORT's TensorRT provider present); else the
    one line saying why not and what builds the Jetson's TensorRT engine instead."""
    if not use_gpu:
        return ("enable_tensorrt_engine: call enable_use_gpu() first (as in Paddle); TensorRT stays off. "
                "For a Jetson, edgedeploy deploy with hardware: jetson-orin-nano writes the QDQ model and TensorRT settings")
    try:
        import onnxruntime as ort

        have = ort.get_available_providers()
    except ImportError:
        have = []
    if "TensorrtExecutionProvider" in have:
        return None
    return ("enable_tensorrt_engine: no TensorRT on this machine (needs an NVIDIA GPU and onnxruntime-gpu); "
            "TensorRT stays off. For a Jetson, edgedeploy deploy with hardware: jetson-orin-nano writes the QDQ model "
            "and the trtexec settings the box builds its engine from")


class PredictorPool:
    """``size`` predictors on one loaded model (Paddle's ``PredictorPool``): the first loads it,
    the others are clones sharing its weights. ``retrive(i)`` (Paddle's spelling) or ``retrieve(i)``."""

    def __init__(self, config: Config, size: int = 1):
        from edgedeploy.inference import create_predictor

        if int(size) < 1:
            raise UserError(f"PredictorPool(size={size}): expected at least 1 predictor")
        first = create_predictor(config)
        self._predictors = [first] + [first.clone() for _ in range(int(size) - 1)]

    def retrive(self, idx: int) -> Predictor:
        if not 0 <= int(idx) < len(self._predictors):
            raise UserError(f"PredictorPool.retrive({idx}): the pool has predictors 0..{len(self._predictors) - 1}")
        return self._predictors[int(idx)]

    retrieve = retrive

    def __len__(self) -> int:
        return len(self._predictors)
