"""FP16 weights and arithmetic, for GPU targets (CUDA/TensorRT, Intel GPU): half the size.

Inputs and outputs stay float32 (``keep_io_types``) so callers do not change. On a CPU, ONNX
Runtime runs most FP16 ops through casts (slower than FP32) and OpenVINO computes in
FP32/BF16 from the FP16 weights; the report states the latency measured on the target.
"""

from __future__ import annotations

from pathlib import Path

import onnx

# Ops whose FP16 versions lose too much (value ranges, reductions) or have no FP16 kernel on CPU.
BLOCKED = ("Resize", "Range", "NonMaxSuppression", "TopK", "RoiAlign", "Upsample")


def convert(model: Path, out: Path) -> None:
    """Write ``model`` with FP16 weights and arithmetic to ``out`` (float32 inputs/outputs)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    m = onnx.load(str(model))
    half = convert_float_to_float16(m, keep_io_types=True, op_block_list=list({*DEFAULT_OP_BLOCK_LIST, *BLOCKED}))
    onnx.save(half, str(out))
