"""Rockchip RK3588 NPU: ONNX → ``.rknn`` (INT8, our calibration data) with RKNN-Toolkit2, checked on its simulator.

RKNN-Toolkit2 2.5.0 pins numpy ≤ 1.26, onnx ≤ 1.18 and protobuf ≤ 4.25, so it lives in its own
venv (``scripts/setup.sh --rknn``) and runs as a subprocess (:mod:`rknn_worker`) spoken to over
:mod:`wire` — a small, versioned interface. :class:`RknnSession` is an ordinary Session whose
outputs come from the toolkit's simulator, so :func:`edgedeploy.evaluation.runner.evaluate`
measures the task metric of the quantized NPU model. The simulator says nothing about speed:
latency is estimated from the NPU's roofline (:func:`edgedeploy.hardware.estimate.estimate`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgedeploy.engines.base import Session
from edgedeploy.errors import UserError
from edgedeploy.targets.worker import WorkerSession

ENABLE = "scripts/setup.sh --rknn"
WORKER = Path(__file__).with_name("rknn_worker.py")
FALLBACK = "the ONNX model still runs on the CPU cores (onnxruntime): deploy ships that fallback"


def venv_python() -> Path:
    from edgedeploy.zoo import cache_dir

    return cache_dir() / "rknn-venv" / "bin" / "python"


def unavailable() -> str | None:
    """None when RKNN-Toolkit2 is installed for edgedeploy; else why not, with the command to install it."""
    if not sys.platform.startswith("linux"):
        return "RKNN-Toolkit2 runs on Linux x86-64/aarch64 only"
    if not venv_python().exists():
        return f"RKNN-Toolkit2 is not installed (its own venv, {venv_python().parent.parent}); run {ENABLE}"
    return None


class RknnSession(WorkerSession):
    """``onnx`` converted to ``out`` (.rknn for ``platform``) and run on the toolkit's simulator.

    shapes: the fixed input shapes (RKNN needs static shapes). calib: calibration feeds (a list of
    {input name: array}) for ``dtype`` "int8"; "fp16" needs none. like: an open host session of
    the same model (tensor names and feed checks). algorithm: the toolkit's INT8 range method
    ("normal" = min/max, "mmse", "kl_divergence"). float_subgraphs: [(input tensor, output tensor), ...]
    kept in float by the toolkit's hybrid quantization (INT8 only).
    """

    def __init__(self, onnx: str | Path, out: str | Path, *, shapes: Sequence[Sequence[int]], like: Session,
                 calib: Sequence[dict[str, np.ndarray]] = (), dtype: str = "int8", platform: str = "rk3588",
                 algorithm: str = "normal", float_subgraphs: Sequence[Sequence[str]] = ()):
        why = unavailable()
        if why:
            raise UserError(f"cannot build for {platform}'s NPU: {why}")
        if dtype == "int8" and not calib:
            raise UserError("RKNN INT8 needs calibration data (calib=[...]); or use dtype='fp16'")
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        names = [s.name for s in like.inputs]
        work = Path(tempfile.mkdtemp(prefix=".rknn-calib-", dir=out.parent))
        try:
            lines = []
            for i, feeds in enumerate(calib):
                paths = []
                for j, name in enumerate(names):
                    p = work / f"{i}-{j}.npy"
                    np.save(p, np.asarray(feeds[name], np.float32))
                    paths.append(str(p))
                lines.append(" ".join(paths))
            dataset = work / "dataset.txt"
            dataset.write_text("\n".join(lines) + "\n")
            build = {"op": "build", "onnx": str(Path(onnx).resolve()), "out": str(out.resolve()), "inputs": names,
                     "shapes": [list(map(int, s)) for s in shapes], "dtype": dtype, "platform": platform,
                     "algorithm": algorithm, "float_subgraphs": [list(p) for p in float_subgraphs],
                     "dataset": str(dataset) if dtype == "int8" else None}
            try:
                super().__init__([str(venv_python()), "-u", str(WORKER)], engine="rknn-simulator",
                                 what=f"RKNN-Toolkit2 ({platform})", like=like, hello=build,
                                 notes=[f"simulated: RKNN-Toolkit2 {{version}} simulator of {platform} {dtype}; "
                                        "accuracy only, no timing"])
            except UserError as exc:
                raise UserError(f"{exc}; {FALLBACK}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.path = out
