"""The published latencies of SPEC.md, and how well the estimator reproduces them.

The models behind those figures (MobileNetV2, ResNet-50, YOLOv8n, ...) are not in the zoo, so
they enter as their published FLOPs and parameter counts (a whole-model roofline; no
per-operator breakdown). Accelerator rows fit one efficiency (fraction of peak) and state the
leave-one-out error; CPU rows use the efficiency learned on this machine, so their error is
the honest cost of carrying a calibration from one CPU to another.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

# model → (FLOPs, parameters, source). FLOPs = 2 x multiply-adds.
MODELS = {
    "mobilenetv2-224": (0.60e9, 3.4e6, "MobileNetV2 paper: 300M multiply-adds, 3.4M parameters"),
    "resnet50-224": (8.2e9, 25.6e6, "ResNet-50: 4.1G multiply-adds, 25.6M parameters"),
    "yolov8n-640": (8.7e9, 3.2e6, "Ultralytics YOLOv8n: 8.7 GFLOPs, 3.2M parameters"),
    "yolo11n-640": (6.5e9, 2.6e6, "Ultralytics YOLO11n: 6.5 GFLOPs, 2.6M parameters"),
    "ssd-mobilenetv2-300": (1.6e9, 4.3e6, "approximate: MobileNetV2 paper's SSDLite figure (0.8G multiply-adds); "
                            "full SSD heads cost more"),
    "picodet-s-320": (0.73e9, 0.99e6, "PaddleDetection PicoDet-S 320: 0.73 GFLOPs, 0.99M parameters"),
}


@dataclass(frozen=True)
class Published:
    device: str
    unit: str  # "accelerator" | "cpu"
    model: str
    precision: str
    ms: float
    peak: float  # ops/s of the unit that ran it
    bandwidth: float | None
    setting: str


POINTS = (
    Published("coral", "accelerator", "mobilenetv2-224", "int8", 2.6, 4e12, None, "Edge TPU"),
    Published("rk3588", "accelerator", "mobilenetv2-224", "int8", 2.3, 2e12, 34e9, "1 NPU core of 3 (6/3 TOPS)"),
    Published("rk3588", "accelerator", "resnet50-224", "int8", 9.2, 2e12, 34e9, "1 NPU core of 3 (6/3 TOPS)"),
    Published("rk3588", "accelerator", "yolov8n-640", "int8", 16.8, 2e12, 34e9, "1 NPU core of 3 (6/3 TOPS)"),
    Published("jetson-orin-nano", "accelerator", "yolov8n-640", "fp16", 7.3, 10e12, 68e9, "TensorRT FP16"),
    Published("jetson-nano", "accelerator", "ssd-mobilenetv2-300", "fp16", 72.3, 472e9, 25.6e9, "TensorRT"),
    Published("raspberry-pi-5", "cpu", "yolo11n-640", "fp32", 81.2, 153.6e9, 17e9, "OpenVINO FP32, 4x A76"),
    Published("i7-10750H", "cpu", "picodet-s-320", "fp32", 4.8, 499.2e9, 46.9e9,
              "Paddle Inference MKLDNN; peak derived: 6 cores x 2.6 GHz x 32 FLOPs/cycle (AVX2)"),
)


@dataclass(frozen=True)
class AcceleratorFit:
    efficiency: float  # geometric mean of FLOPs / (peak x time)
    band: float  # x/÷ factor covering every leave-one-out error
    n: int


def _eff(p: Published) -> float:
    return MODELS[p.model][0] / (p.peak * p.ms / 1e3)


def _geo(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


@functools.lru_cache(maxsize=1)
def accelerator_efficiency() -> AcceleratorFit:
    acc = [p for p in POINTS if p.unit == "accelerator"]
    logs = []
    for p in acc:
        e = _geo(_eff(q) for q in acc if q is not p)
        logs.append(abs(math.log(MODELS[p.model][0] / (p.peak * e) * 1e3 / p.ms)))
    return AcceleratorFit(efficiency=_geo(_eff(p) for p in acc), band=math.exp(max(logs)), n=len(acc))


def _cpu_efficiency(calibration) -> float | None:
    """Whole-model efficiency learned here: median of FLOPs / (peak x measured time) over the calibration."""
    if calibration is None or not calibration.points:
        return None
    effs = sorted(p["flops"] / (calibration.peak_fp32 * p["measured_ms"] / 1e3)
                  for p in calibration.points)
    return effs[len(effs) // 2]


def check(calibration=None) -> list[dict]:
    """Each published latency beside the estimate for it (accelerators: leave-one-out).

    ``calibration``: this machine's CPU calibration (:func:`edgedeploy.hardware.estimate.load_calibration`);
    without one the CPU rows have no estimate. The caller passes it, so this module needs nothing
    from :mod:`~edgedeploy.hardware.estimate` (which needs this one).
    """
    acc = [p for p in POINTS if p.unit == "accelerator"]
    cpu_e = _cpu_efficiency(calibration)
    rows = []
    for p in POINTS:
        flops, params, src = MODELS[p.model]
        if p.unit == "accelerator":
            e = _geo(_eff(q) for q in acc if q is not p)
            how = f"accelerator efficiency {e:.1%} fitted on the other {len(acc) - 1} published rows"
        elif cpu_e is not None:
            e = cpu_e
            how = f"CPU efficiency {e:.1%} learned on this machine ({calibration.engine})"
        else:
            rows.append({**asdict(p), "estimated_ms": None, "error": None, "method": "no calibration yet",
                         "flops": flops, "model_source": src})
            continue
        est = flops / (p.peak * e) * 1e3
        if p.bandwidth and p.precision != "int8":
            est = max(est, params * (2 if p.precision == "fp16" else 4) / p.bandwidth * 1e3)
        rows.append({**asdict(p), "estimated_ms": est, "error": est / p.ms - 1, "method": how, "flops": flops,
                     "model_source": src})
    return rows


def cpu_transfer_band(calibration=None) -> float:
    """x/÷ factor seen when carrying this machine's CPU efficiency to the published CPUs (2.0 if unknown)."""
    rows = [r for r in check(calibration) if r["unit"] == "cpu" and r["error"] is not None]
    if not rows:
        return 2.0
    return max(math.exp(max(abs(math.log(1 + r["error"])) for r in rows)), 1.0)
