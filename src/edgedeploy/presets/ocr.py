"""The fast OCR preset: which model file, engine precision and batching each OCR stage uses when
speed matters, chosen by measurement (benchmarks/ocr_vs_rapidocr.py; results in
benchmarks/results/ocr_vs_rapidocr.md).

>>> from edgedeploy import presets
>>> ocr = presets.fast_ocr()                     # det INT8 + cls + rec, on OpenVINO
>>> ocr(cv2.imread("page.png")).texts

The INT8 detector is made once by :func:`edgedeploy.optimize.optimize` (NNCF, guarded by the
det task's accuracy: at most ``max_accuracy_drop`` points of hmean lost) and cached under
``cache_dir()/optimized``, keyed by the FP32 model's SHA-256: the first call takes a few minutes,
later ones load the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy import engines, tasks, zoo
from edgedeploy.engines import EngineOptions
from edgedeploy.errors import UserError
from edgedeploy.optimize import optimize
from edgedeploy.util import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class StagePreset:
    """One OCR stage: zoo model, "int8" (a cached optimised copy) or a float precision the engine
    may use at run time ("fp32", "bf16", "fp16"; see EngineOptions), and the task's options."""

    model: str
    precision: str = "fp32"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OCRPreset:
    """The three stages of the OCR system and the engine they run on."""

    engine: str = "openvino"
    det: StagePreset
    cls: StagePreset | None
    rec: StagePreset


# Measured on PP-OCRv6 small, 2 threads, AVX-512 CPU (benchmarks/results/ocr_vs_rapidocr.md):
# det INT8 (NNCF) on OpenVINO is ~3x FP32 with no hmean lost; det sees the short side at 640 px
# rather than rapidocr's 736 (no upscale of a 640 px page; same hmean and text on 50 generated
# pages; raise limit_side_len for small print). rec runs in BF16 where the CPU has it (OpenVINO
# falls back to FP32 elsewhere; INT8 rec lost ~1 point of line accuracy), one line per run with
# widths rounded up to 32 px and no 320 px minimum, so no line is padded to a wider neighbour and
# OpenVINO sees few shapes; cls, fixed 48x192, runs all lines in one batch.
FAST = OCRPreset(
    det=StagePreset(model="ppocrv6-det", precision="int8", options={"limit_side_len": 640}),
    cls=StagePreset(model="ppocr-cls", options={"batch_size": 64}),
    rec=StagePreset(model="ppocrv6-rec", precision="bf16",
                    options={"batch_size": 1, "width_step": 32, "min_width": 48}),
)


def int8_path(name: str, *, engine: str = "openvino") -> Path:
    """Where :func:`int8_model` keeps zoo model ``name``'s INT8 copy for ``engine`` (made or not)."""
    return zoo.cache_dir() / "optimized" / f"{name}-{sha256_file(zoo.fetch(name).path)[:16]}.{engine}.int8.onnx"


def int8_model(name: str, *, engine: str = "openvino", max_accuracy_drop: float = 0.5, threads: int = 2) -> Path:
    """Path of zoo model ``name`` quantized to INT8 for ``engine``, made on first use and cached.

    The cache key is the FP32 file's SHA-256, so a new zoo version is quantized afresh. Raises
    :class:`UserError` when INT8 cannot stay within ``max_accuracy_drop`` points of the task metric.
    """
    model = zoo.fetch(name)
    out = int8_path(name, engine=engine)
    if not out.exists():
        log.warning("making an INT8 copy of %s for %s once (a few minutes); cached at %s", name, engine, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        optimize(name, out, engine=engine, precision="int8", task=model.entry.task,
                 max_accuracy_drop=max_accuracy_drop, threads=threads)
    return out


def stage_path(stage: StagePreset, engine: str) -> tuple[Path | None, str]:
    """(model file to load or None for the zoo's own, run-time precision) for one stage."""
    if stage.precision == "int8":
        return int8_model(stage.model, engine=engine), "fp32"
    if stage.precision not in ("fp32", "bf16", "fp16"):
        raise UserError(f"precision {stage.precision!r} for {stage.model}: expected int8, fp32, bf16 or fp16")
    return None, stage.precision


def build_system(preset: OCRPreset = FAST, *, engine: str | None = None, threads: int | None = 2, **system_options):
    """An :class:`~edgedeploy.tasks.OCRSystem` configured by ``preset`` (``engine`` overrides its engine)."""
    engine = engine or preset.engine
    built = {}
    for task, stage in (("det", preset.det), ("cls", preset.cls), ("rec", preset.rec)):
        if stage is None:
            built[task] = None
            continue
        zmodel = zoo.fetch(stage.model)
        path, precision = stage_path(stage, engine)
        session = engines.load(str(path or zmodel.path), engine=engine,
                               options=EngineOptions(threads=threads, precision=precision))
        built[task] = tasks.build(task, session, zmodel, **stage.options)
    return tasks.OCRSystem(built["det"], built["cls"], built["rec"], **system_options)


def fast_ocr(*, engine: str = "openvino", threads: int | None = 2, **options):
    """The PP-OCRv6 system tuned for speed on the CPU (:data:`FAST`): INT8 detector (made once
    and cached), BF16 recogniser, lines batched without padding waste.

    engine: "openvino" (the measured choice) or "onnxruntime"; threads: intra-op threads per
    model; options: as for :class:`~edgedeploy.tasks.OCRSystem` (text_score, ...).
    """
    return build_system(FAST, engine=engine, threads=threads, **options)
