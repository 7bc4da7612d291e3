"""How far a measured row is from the machine's compute peak: achieved GFLOP/s and share of peak.

achieved = the model's FLOPs at the row's input shape (:func:`edgedeploy.modelinfo.describe`:
2 per multiply-add of Conv/MatMul/Gemm, of the FP32 source model, since an INT8 file does the
same arithmetic) / p50 latency. share = achieved / the CPU's estimated peak *for the precision
the row ran at*: INT8 for a quantized model (QuantizeLinear/QLinear nodes), else what the
engine reports (OpenVINO's ``INFERENCE_PRECISION_HINT``, e.g. BF16 by default on CPUs with
AVX512_BF16/AMX), else the row's requested precision.

Reading it: a share near the peak is compute-bound (only less work — pruning, lower
resolution — or a wider data type helps); a small share is memory- or overhead-bound (many
small operators, layout changes, thread start-up — fusion, fewer threads or batching help).

The peak comes from whoever calls (``peak``: an object with ``peak_gflops(precision)`` and
``method``, e.g. :func:`edgedeploy.hardware.isa.detect`), so this layer does not probe the CPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
METHOD = ("GFLOP/s: the model's FLOPs at the row's shape (edgedeploy.modelinfo, 2 per multiply-add) / p50; "
          "% peak: against the CPU's estimated peak for the precision the row ran at")


class Peak(Protocol):
    method: str

    def peak_gflops(self, precision: str) -> float: ...


@dataclass(frozen=True)
class Headroom:
    gflops: float
    precision: str
    peak_gflops: float | None
    share: float | None  # achieved / peak

    def to_dict(self) -> dict:
        return {"gflops": round(self.gflops, 1), "precision": self.precision,
                "peak_gflops": None if self.peak_gflops is None else round(self.peak_gflops, 1),
                "share_of_peak": None if self.share is None else round(self.share, 4)}


@functools.cache
def _describe(model: str, shape: tuple[int, ...]) -> tuple[int | None, bool]:
    """(FLOPs at ``shape``, whether the model file is quantized)."""
    from edgedeploy import modelinfo

    info = modelinfo.describe(model, shape=shape)
    return info.flops, bool(QUANTIZED_OPS & set(info.op_histogram))


def precision_of(result) -> str:
    """The precision a row's arithmetic ran at (see the module docstring)."""
    c = result.config
    try:
        if _describe(str(c.model), tuple(c.shape))[1]:
            return "int8"
    except Exception:  # noqa: BLE001 - a model modelinfo cannot read: fall back to the settings
        pass
    hint = str(result.engine_settings.get("INFERENCE_PRECISION_HINT", "")).lower()  # e.g. "<Type: 'bfloat16'>"
    if "bf16" in hint or "bfloat16" in hint:
        return "bf16"
    if "f16" in hint or "float16" in hint:
        return "fp16"
    return str(c.precision)


def of(result, peak: Peak | None) -> Headroom | None:
    """The row's :class:`Headroom`; None for a failed row or a model whose FLOPs are unknown."""
    if not result.ok or not result.p50:
        return None
    c = result.config
    try:
        flops, _ = _describe(str(c.compared_model), tuple(c.shape))
    except Exception:  # noqa: BLE001 - no FLOPs (e.g. a Paddle model modelinfo cannot shape): no headroom
        return None
    if not flops:
        return None
    gflops = flops / (result.p50 / 1000) / 1e9
    precision = precision_of(result)
    top = peak.peak_gflops(precision) if peak is not None else None
    return Headroom(gflops, precision, top, gflops / top if top else None)
