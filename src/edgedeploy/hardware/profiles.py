"""Hardware profiles: the edge boxes of SPEC.md (public figures, with their sources) and this machine (probed).

Every number says where it came from: ``published`` (vendor figure, as gathered in SPEC.md's
edge-hardware table), ``derived`` (computed from published figures; the formula is given) or
``probed`` (read from this machine: /proc/cpuinfo, psutil, or measured by a short copy loop).
A figure nobody publishes is ``None`` and the estimator says it cannot use it, rather than guess.
"""

from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.hardware.isa import parse as parse_isa

SPEC = "SPEC.md edge hardware table (public vendor figures)"
GB = 10**9


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A number and where it came from: ``published``, ``derived`` (with how) or ``probed``."""

    value: float | None
    basis: str

    def __bool__(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, kw_only=True)
class ComputeUnit:
    """One place a model can run on the device: the CPU cluster or an accelerator.

    peak: precision ("fp32", "fp16", "int8") → ops/s as :class:`Figure`. A precision absent
    from ``peak`` is not supported by this unit.
    """

    name: str
    kind: str  # "cpu" | "gpu" | "npu" | "dpu" | "tpu"
    peak: dict[str, Figure]
    stack: str  # the toolchain that programs it

    def best_precision(self, wanted: str) -> str | None:
        """``wanted`` if this unit runs it, else the closest it does (int8 → fp16 → fp32)."""
        order = ["int8", "fp16", "fp32"]
        if wanted == "bf16":
            wanted = "fp16"
        if wanted in self.peak and self.peak[wanted]:
            return wanted
        start = order.index(wanted) if wanted in order else 0
        for p in order[start:] + order[:start][::-1]:
            if p in self.peak and self.peak[p]:
                return p
        return None


@dataclass(frozen=True, kw_only=True)
class Assessment:
    """The seed's developer-friendliness and ecosystem criteria, as facts plus a 0..1 score."""

    score: float
    facts: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class HardwareProfile:
    """One device: CPU, accelerators, memory, bandwidth, power, toolchain, and sources."""

    key: str
    name: str
    cpu: str
    units: tuple[ComputeUnit, ...]
    memory_bytes: Figure
    bandwidth: Figure  # bytes/s to main memory
    power_w: tuple[float, float] | None  # (typical low, high) board power
    power_basis: str
    stack: str
    edgedeploy_engines: tuple[str, ...]  # engines of this package that run there as-is
    toolchain: Assessment
    ecosystem: Assessment
    sources: tuple[str, ...] = (SPEC,)
    notes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    local: bool = False
    isa: tuple[str, ...] = field(default=())

    @property
    def cpu_unit(self) -> ComputeUnit | None:
        return next((u for u in self.units if u.kind == "cpu"), None)

    @property
    def accelerators(self) -> tuple[ComputeUnit, ...]:
        return tuple(u for u in self.units if u.kind != "cpu")

    def to_dict(self) -> dict:
        def fig(f: Figure) -> dict:
            return {"value": f.value, "basis": f.basis}

        return {
            "key": self.key, "name": self.name, "cpu": self.cpu, "local": self.local, "isa": list(self.isa),
            "units": [{"name": u.name, "kind": u.kind, "stack": u.stack,
                       "peak_ops_per_s": {p: fig(f) for p, f in u.peak.items()}} for u in self.units],
            "memory_bytes": fig(self.memory_bytes), "bandwidth_bytes_per_s": fig(self.bandwidth),
            "power_w": list(self.power_w) if self.power_w else None, "power_basis": self.power_basis,
            "stack": self.stack, "edgedeploy_engines": list(self.edgedeploy_engines),
            "toolchain": {"score": self.toolchain.score, "facts": list(self.toolchain.facts)},
            "ecosystem": {"score": self.ecosystem.score, "facts": list(self.ecosystem.facts)},
            "sources": list(self.sources), "notes": list(self.notes), "aliases": list(self.aliases),
        }


def pub(value: float | None, what: str = "") -> Figure:
    return Figure(value=value, basis=f"published{': ' + what if what else ''}" if value is not None
                  else f"not published{': ' + what if what else ''}")


def der(value: float, how: str) -> Figure:
    return Figure(value=value, basis=f"derived: {how}")


def _arm_cpu(cores: int, ghz: float, flops_per_cycle: int, core: str, extra: tuple = ()) -> ComputeUnit:
    peak = cores * ghz * 1e9 * flops_per_cycle
    how = f"{cores} cores x {ghz} GHz x {flops_per_cycle} FP32 FLOPs/cycle ({core} NEON FMA)"
    return ComputeUnit(name=f"{cores}x {core}", kind="cpu", stack="ONNX Runtime / OpenVINO ARM CPU / NCNN",
                       peak={"fp32": der(peak, how), **dict(extra)})


# Assessments: edgedeploy's reading of the seed's criteria 2 and 3, stated as checkable facts.
_JETSON_TOOLS = Assessment(score=0.9, facts=(
    "ONNX and PyTorch (torch2trt / ONNX) into TensorRT; CUDA runs PyTorch natively",
    "Nsight Systems profiler, tegrastats power rails", "ORT CUDA/TensorRT providers and Paddle Inference GPU build"))
_JETSON_ECO = Assessment(score=0.9, facts=(
    "JetPack (Ubuntu Linux), Docker containers (L4T)", "largest edge-AI community; MQTT via standard Linux packages"))

DEVICES: tuple[HardwareProfile, ...] = (
    HardwareProfile(
        key="jetson-nano", name="NVIDIA Jetson Nano 4GB", cpu="4x Cortex-A57 1.43 GHz", aliases=("nano",),
        units=(_arm_cpu(4, 1.43, 8, "Cortex-A57"),
               ComputeUnit(name="128-core Maxwell GPU", kind="gpu", stack="TensorRT / CUDA", peak={
                   "fp16": pub(472e9, "472 GFLOPS FP16"),
                   "fp32": der(236e9, "half the FP16 rate (Maxwell runs FP16 at 2x FP32)")})),
        memory_bytes=pub(4 * GB, "4 GB LPDDR4"), bandwidth=pub(25.6e9, "25.6 GB/s"),
        power_w=(5, 10), power_basis="published: 5-10 W modes", stack="TensorRT",
        edgedeploy_engines=("onnxruntime", "paddle"), toolchain=_JETSON_TOOLS, ecosystem=_JETSON_ECO,
        notes=("Maxwell has no INT8 dot-product instructions: INT8 runs no faster than FP16 there",)),
    HardwareProfile(
        key="jetson-orin-nano", name="NVIDIA Jetson Orin Nano 8GB", cpu="6x Cortex-A78AE 1.5 GHz",
        aliases=("orin-nano",),
        units=(_arm_cpu(6, 1.5, 16, "Cortex-A78AE"),
               ComputeUnit(name="Ampere GPU (1024 CUDA, 32 tensor cores)", kind="gpu", stack="TensorRT / CUDA", peak={
                   "int8": der(20e12, "40 TOPS INT8 sparse published; dense = half"),
                   "fp16": der(10e12, "half the dense INT8 rate (tensor cores)")})),
        memory_bytes=pub(8 * GB, "8 GB LPDDR5"), bandwidth=pub(68e9, "68 GB/s"),
        power_w=(7, 15), power_basis="published: 7-15 W modes", stack="TensorRT",
        edgedeploy_engines=("onnxruntime", "paddle"), toolchain=_JETSON_TOOLS, ecosystem=_JETSON_ECO),
    HardwareProfile(
        key="jetson-agx-orin", name="NVIDIA Jetson AGX Orin 64GB", cpu="12x Cortex-A78AE 2.2 GHz",
        aliases=("agx-orin",),
        units=(_arm_cpu(12, 2.2, 16, "Cortex-A78AE"),
               ComputeUnit(name="Ampere GPU + 2 DLA", kind="gpu", stack="TensorRT (+DLA)", peak={
                   "int8": der(137.5e12, "275 TOPS INT8 sparse published (GPU+DLA); dense = half"),
                   "fp16": der(68.75e12, "half the dense INT8 rate"),
                   "fp32": pub(5.3e12, "5.3 TFLOPS FP32")})),
        memory_bytes=pub(64 * GB, "64 GB LPDDR5"), bandwidth=pub(204.8e9, "204.8 GB/s"),
        power_w=(15, 60), power_basis="published: 15-60 W modes", stack="TensorRT (+DLA)",
        edgedeploy_engines=("onnxruntime", "paddle"), toolchain=_JETSON_TOOLS, ecosystem=_JETSON_ECO),
    HardwareProfile(
        key="rk3588", name="Rockchip RK3588", cpu="4x Cortex-A76 2.4 GHz + 4x Cortex-A55 1.8 GHz",
        units=(ComputeUnit(name="4x A76 + 4x A55", kind="cpu", stack="ONNX Runtime / NCNN", peak={
                   "fp32": der(211.2e9, "4 x 2.4 GHz x 16 (A76) + 4 x 1.8 GHz x 8 (A55) FP32 FLOPs/cycle")}),
               ComputeUnit(name="NPU (3 cores)", kind="npu", stack="RKNN-Toolkit2", peak={
                   "int8": pub(6e12, "6 TOPS INT8")})),
        memory_bytes=pub(None, "LPDDR4/5, board-dependent (4-32 GB)"), bandwidth=pub(34e9, "~34 GB/s"),
        power_w=(5, 10), power_basis="published: ~5-10 W", stack="RKNN-Toolkit2",
        edgedeploy_engines=("onnxruntime",),
        toolchain=Assessment(score=0.6, facts=(
            "PyTorch/ONNX → RKNN via RKNN-Toolkit2 (conversion step, INT8 calibration for the NPU)",
            "CPU runs ONNX Runtime as-is; NPU profiling via rknn eval_perf")),
        ecosystem=Assessment(score=0.7, facts=("Linux (Debian/Ubuntu) and Android BSPs", "low cost (~$300 board)"))),
    HardwareProfile(
        key="atlas-500", name="Huawei Atlas 500 (Ascend 310)", cpu="host CPU (not in SPEC)",
        units=(ComputeUnit(name="Ascend 310", kind="npu", stack="CANN", peak={
            "int8": pub(16e12, "16 TOPS INT8"), "fp16": pub(8e12, "8 TFLOPS FP16")}),),
        memory_bytes=pub(8 * GB, "8 GB"), bandwidth=pub(None, "memory bandwidth"),
        power_w=(8, 8), power_basis="published: 8 W for the chip only; the box draws more", stack="CANN",
        edgedeploy_engines=(),
        toolchain=Assessment(score=0.5, facts=(
            "ONNX/PyTorch → OM via ATC (CANN); PyTorch plug-in with dynamic shapes",
            "vendor profiler (msprof); documentation mostly Chinese")),
        ecosystem=Assessment(score=0.6, facts=("EulerOS/Ubuntu", "port deployment in seed 3: 50 boxes, <20 ms a frame"))),
    HardwareProfile(
        key="kria-kv260", name="AMD Kria KV260", cpu="4x Cortex-A53", aliases=("kv260",),
        units=(ComputeUnit(name="DPU B3136", kind="dpu", stack="Vitis AI", peak={
            "int8": pub(0.92e12, "0.92 TOPS INT8")}),),
        memory_bytes=pub(4 * GB, "4 GB DDR4"),
        bandwidth=der(19.2e9, "DDR4-2400 x 64 bit = 2400e6 x 8 B"),
        power_w=(8, 8), power_basis="published: ~8 W", stack="Vitis AI",
        edgedeploy_engines=(),
        toolchain=Assessment(score=0.35, facts=(
            "PyTorch/ONNX → xmodel via Vitis AI quantizer + compiler (INT8 only)",
            "reconfigurable: custom operators need FPGA work")),
        ecosystem=Assessment(score=0.5, facts=("PetaLinux / Ubuntu", "smaller community; app store of accelerated apps"))),
    HardwareProfile(
        key="raspberry-pi-5", name="Raspberry Pi 5", cpu="4x Cortex-A76 2.4 GHz", aliases=("rpi5", "pi5"),
        units=(_arm_cpu(4, 2.4, 16, "Cortex-A76"),),
        memory_bytes=pub(8 * GB, "4/8 GB LPDDR4X (8 GB variant)"),
        bandwidth=der(17e9, "LPDDR4X-4267 x 32 bit ~ 17 GB/s"),
        power_w=(5, 12), power_basis="published: ~5-12 W", stack="ORT, OpenVINO, NCNN, TFLite",
        edgedeploy_engines=("onnxruntime", "openvino"),
        toolchain=Assessment(score=0.85, facts=(
            "runs ONNX Runtime and OpenVINO (ARM CPU) as-is: edgedeploy measures there directly",
            "PyTorch installs natively (aarch64 wheels)")),
        ecosystem=Assessment(score=0.95, facts=("Raspberry Pi OS / Ubuntu / Android", "very large community"))),
    HardwareProfile(
        key="intel-nuc", name="Intel NUC (i7-1165G7)", cpu="4C/8T Core i7-1165G7 2.8-4.7 GHz", aliases=("nuc",),
        units=(ComputeUnit(name="4x Tiger Lake cores", kind="cpu", stack="OpenVINO / ONNX Runtime", peak={
                   "fp32": der(358.4e9, "4 cores x 2.8 GHz base x 32 FP32 FLOPs/cycle (one AVX-512 FMA port)"),
                   "int8": der(1433.6e9, "4x FP32 with AVX-512 VNNI")}),
               ComputeUnit(name="Iris Xe 96 EU", kind="gpu", stack="OpenVINO GPU", peak={
                   "fp32": der(1.997e12, "96 EU x 16 FLOPs/cycle x 1.3 GHz (Intel ARK max GPU clock)"),
                   "fp16": der(3.994e12, "2x FP32")})),
        memory_bytes=pub(None, "DDR4-3200, installed by the buyer (up to 64 GB)"),
        bandwidth=der(51.2e9, "DDR4-3200 dual channel: 3200e6 x 16 B"),
        power_w=(28, 28), power_basis="published: 28 W TDP", stack="OpenVINO",
        edgedeploy_engines=("openvino", "onnxruntime", "paddle"),
        toolchain=Assessment(score=1.0, facts=(
            "x86-64: every edgedeploy engine runs as-is, PyTorch natively", "VTune, OpenVINO benchmark_app")),
        ecosystem=Assessment(score=0.9, facts=("Windows / Linux", "ordinary PC ecosystem; highest power here")),
        sources=(SPEC, "Intel ARK i7-1165G7 (GPU clock)")),
    HardwareProfile(
        key="coral", name="Google Coral Edge TPU", cpu="host CPU", aliases=("edgetpu", "coral-edge-tpu"),
        units=(ComputeUnit(name="Edge TPU", kind="tpu", stack="TFLite + Edge TPU compiler", peak={
            "int8": pub(4e12, "4 TOPS INT8")}),),
        memory_bytes=pub(8 * 2**20, "8 MB on-chip parameter cache"), bandwidth=pub(None, "host link (USB/PCIe)"),
        power_w=(2, 2), power_basis="published: ~2 W", stack="TFLite + Edge TPU",
        edgedeploy_engines=(),
        toolchain=Assessment(score=0.4, facts=(
            "PyTorch/ONNX → TFLite full-INT8 → edgetpu_compiler; unsupported ops fall back to the host CPU",
            "static shapes only")),
        ecosystem=Assessment(score=0.6, facts=("Linux, macOS, Windows hosts (USB)", "PyCoral; slowed development")),
        notes=("weights beyond the 8 MB on-chip cache stream from the host each inference",)),
    HardwareProfile(
        key="hailo-8", name="Hailo-8", cpu="host CPU", aliases=("hailo",),
        units=(ComputeUnit(name="Hailo-8", kind="npu", stack="HailoRT (Dataflow Compiler)", peak={
            "int8": pub(26e12, "26 TOPS INT8")}),),
        memory_bytes=pub(None, "no DRAM: weights on-chip"), bandwidth=pub(None, "no DRAM"),
        power_w=(2.5, 2.5), power_basis="published: 2.5 W typical", stack="HailoRT",
        edgedeploy_engines=(),
        toolchain=Assessment(score=0.5, facts=(
            "ONNX/TFLite → HEF via the Dataflow Compiler (INT8, calibration set needed)", "static shapes")),
        ecosystem=Assessment(score=0.6, facts=("Linux hosts (x86, ARM; Raspberry Pi AI Kit)", "growing model zoo"))),
)

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "avx_vnni", "neon", "asimddp")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def measure_bandwidth(size_bytes: int = 64 * 2**20, repeats: int = 7) -> float:
    """Main-memory bandwidth in bytes/s: the best of ``repeats`` numpy copies of ``size_bytes``
    (read + write counted, so 2 x size per copy; the best, as STREAM reports, because other
    processes only ever slow a copy down). Takes about a tenth of a second."""
    import numpy as np

    src = np.ones(size_bytes // 8)
    dst = np.empty_like(src)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * size_bytes / min(times)


@functools.lru_cache(maxsize=1)
def local(*, bandwidth: bool = True) -> HardwareProfile:
    """This machine, probed: usable cores, CPU model and clock, ISA, memory, GPUs, and bandwidth (measured)."""
    import psutil

    from edgedeploy import engines
    from edgedeploy.benchmarking.power import cpu_model

    info = _cpuinfo()
    flags = set((re.search(r"^(flags|Features)\s*:\s*(.+)$", info, re.M) or [None, None, ""])[2].split())
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)
    ghz = float(mhz.group(1)) / 1000 if mhz else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (psutil.cpu_count() or 1)
    isa = tuple(f for f in ISA_FLAGS if f in flags)
    cpu = parse_isa(info, cores=cores)  # one source for operations per cycle (Zen 5 has full 512-bit units, Zen 4 not)
    peak: dict[str, Figure] = {}
    if ghz:
        for precision, key in (("fp32", "fp32"), ("bf16", "fp16"), ("int8", "int8")):
            per_cycle, path = cpu.ops_per_cycle(precision)
            if precision == "fp32" or per_cycle > cpu.ops_per_cycle("fp32")[0]:  # only a native faster path counts
                peak[key] = der(cores * ghz * 1e9 * per_cycle,
                                f"probed {cores} usable cores x {ghz:.2f} GHz x {per_cycle} {precision} ops/cycle ({path})")
    gpus = [e for e in engines.ENGINES if engines.available(e) and _safe_gpu(e)]
    units = [ComputeUnit(name=f"{cores}x {cpu_model()}", kind="cpu", stack="ONNX Runtime / OpenVINO / Paddle", peak=peak)]
    if gpus:
        units.append(ComputeUnit(name="GPU seen by " + ", ".join(gpus), kind="gpu", stack=", ".join(gpus), peak={}))
    bw = Figure(value=measure_bandwidth(), basis="probed: best of 7 numpy copies of 64 MiB") if bandwidth else \
        Figure(value=None, basis="not probed")
    return HardwareProfile(
        key="local", name=f"this machine ({cpu_model()})", cpu=f"{cores} usable cores, {cpu_model()}",
        units=tuple(units), memory_bytes=Figure(value=psutil.virtual_memory().total, basis="probed: psutil"),
        bandwidth=bw, power_w=None, power_basis="see benchmark power: RAPL if readable, else estimated",
        stack="ONNX Runtime, OpenVINO, Paddle Inference",
        edgedeploy_engines=tuple(e for e in engines.ENGINES if engines.available(e)),
        toolchain=Assessment(score=1.0, facts=("every installed edgedeploy engine runs here",)),
        ecosystem=Assessment(score=1.0, facts=("the development machine",)),
        sources=("probed: /proc/cpuinfo, os.sched_getaffinity, psutil, engines' GPU checks",),
        local=True, isa=isa, aliases=("this", "localhost"),
        notes=(f"GPU: {', '.join(gpus)}" if gpus else "no GPU seen by any installed engine",),
    )


def _safe_gpu(engine: str) -> bool:
    from edgedeploy import engines

    try:
        return engines.gpu_available(engine)
    except Exception:  # an SDK that fails to initialise its GPU layer has no usable GPU for us
        return False


def names() -> list[str]:
    return [d.key for d in DEVICES] + ["local"]


def get(name: str) -> HardwareProfile:
    """The profile called ``name`` (key or alias, case-insensitive; "local" = this machine)."""
    wanted = name.strip().lower().replace("_", "-").replace(" ", "-")
    if wanted in ("local", "this", "localhost", "cpu"):
        return local()
    for d in DEVICES:
        if wanted == d.key or wanted in d.aliases:
            return d
    choices = [*names(), *(a for d in DEVICES for a in d.aliases)]
    raise UserError(f"unknown hardware {name!r}{did_you_mean(wanted, choices)}; known: {', '.join(names())} "
                    "(see `edgedeploy devices`)")


def all_profiles(*, include_local: bool = True) -> list[HardwareProfile]:
    return [*DEVICES, *([local()] if include_local else [])]
