"""INT8 with ONNX Runtime's quantizer: static, calibrated activations, QDQ format.

What makes INT8 pay on ORT's x86 CPU kernels (measured on AVX-512 VNNI, see
``benchmarks/compression_table.py``): unsigned 8-bit activations with signed 8-bit per-channel
weights (U8S8, no ``reduce_range`` on VNNI), activations quantized too, so that consecutive
Conv nodes hand each other INT8 tensors, and every op that has an INT8 kernel quantized — a
model where only the Conv weights are INT8 spends its gain on Quantize/Dequantize pairs.
Per-channel weights need opset 13 (``graph.optimize_graph`` upgrades older models).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.optimize.calibration import CalibrationSet

WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_METHODS = {"default": "MinMax", "minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class _NoPreprocessAdvice(logging.Filter):
    """ORT's quantizer advises shape pre-processing on the root logger at every call; graph.optimize_graph
    has done that already, so the advice is noise on the user's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_advice():
    root, f = logging.getLogger(), _NoPreprocessAdvice()
    root.addFilter(f)  # scoped to the call, removed after: the process's logging is left as it was
    try:
        yield
    finally:
        root.removeFilter(f)


def quantize_static(model: Path, out: Path, calib: CalibrationSet, *, exclude: Sequence[str] = (),
                    cache: Path | None = None) -> None:
    """Calibrated U8S8 per-channel INT8 of the ONNX file ``model`` into ``out``; nodes named in ``exclude`` stay float.

    cache: a JSON file of calibrated tensor ranges; written on the first call, reused after
    (calibration does not change when only the excluded nodes do).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if calib.method == "percentile":
        extra["CalibPercentile"] = 99.999
    try:
        with _quiet_advice():
            ort_quantize_static(
                str(model), str(out), calib.reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True, reduce_range=False,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude) or None,
                calibrate_method=getattr(CalibrationMethod, _METHODS[calib.method]),
                extra_options=extra, calibration_cache_path=cache,
            )
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"onnxruntime could not quantize the model: {str(exc).splitlines()[0][:300]}") from None
