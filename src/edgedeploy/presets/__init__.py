"""Presets: systems assembled from tasks and optimised models, chosen by measurement.

A preset sits above :mod:`edgedeploy.tasks` (what a model computes) and
:mod:`edgedeploy.optimize` (how a model is made smaller), since it uses both: e.g. the fast OCR
system runs an INT8 detector that :func:`edgedeploy.optimize.optimize` makes on first use.

>>> from edgedeploy import presets
>>> ocr = presets.fast_ocr()                    # det INT8 + cls + rec BF16, on OpenVINO
>>> ocr(cv2.imread("page.png")).texts
"""

from edgedeploy.presets.ocr import FAST, OCRPreset, StagePreset, build_system, fast_ocr, int8_model, int8_path, stage_path

__all__ = ["FAST", "OCRPreset", "StagePreset", "build_system", "fast_ocr", "int8_model", "int8_path", "stage_path"]
