"""Deployment targets: what a box runs, not just what it is called.

A :class:`Target` is a device profile (:mod:`~edgedeploy.hardware.profiles`) plus its
instruction set and the runtimes that run there: per runtime, the engine, the compute unit,
the precisions it runs, the artefact edgedeploy ships for it, and how far edgedeploy can check
that artefact on this machine (``measured`` here, ``emulated`` under qemu-aarch64, ``simulated``
by the vendor's simulator, or a ``stand-in`` engine run here). ``deploy`` searches only the
runtime x precision combinations of its target; an x86 figure is never shown for an ARM box.

>>> t = target("rpi5")            # aliases and case are accepted; unknown names get a did-you-mean
>>> t.isa, [r.engine for r in t.runtimes_for("int8")]
('aarch64', ['onnxruntime', 'ncnn'])
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.hardware.profiles import DEVICES, HardwareProfile, local

ARM_CPU_ARTEFACT = "ONNX model for ONNX Runtime's aarch64 build"


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """One way a model runs on a target.

    engine: "onnxruntime", "ncnn", "openvino", "paddle" (edgedeploy engines) or "tensorrt", "rknn"
        (vendor toolchains edgedeploy drives to produce the artefact).
    unit: the compute unit kind it runs on ("cpu", "gpu", "npu").
    check: how edgedeploy verifies the artefact here: "measured" (runs on this machine),
        "emulated" (qemu-aarch64 with the same engine version), "simulated" (vendor simulator),
        "stand-in" (another engine runs the same file here, e.g. ORT for TensorRT's QDQ ONNX).
    """

    engine: str
    unit: str
    precisions: tuple[str, ...]
    artefact: str
    check: str


@dataclass(frozen=True, kw_only=True)
class Target:
    """A box edgedeploy can deploy to: its device profile, ISA and runtimes."""

    key: str
    isa: str  # "x86-64" | "aarch64"
    device: HardwareProfile
    runtimes: tuple[Runtime, ...]
    qemu_cpu: str | None = None  # the qemu -cpu model closest to the box's cores (None: runs natively here)

    @property
    def memory_bytes(self) -> float | None:
        return self.device.memory_bytes.value

    @property
    def native(self) -> bool:
        """Whether this machine shares the target's instruction set (artefacts run here as-is)."""
        return self.isa == host_isa()

    def precisions(self) -> list[str]:
        seen: list[str] = []
        for r in self.runtimes:
            seen += [p for p in r.precisions if p not in seen]
        return seen

    def runtimes_for(self, precision: str | None = None) -> list[Runtime]:
        """The runtimes that run ``precision`` (all when None); a precision none runs is a UserError
        that names, per precision, the runtimes that do."""
        if precision in (None, "auto"):
            return list(self.runtimes)
        found = [r for r in self.runtimes if precision in r.precisions]
        if not found:
            can = "; ".join(f"{p}: {', '.join(r.engine for r in self.runtimes if p in r.precisions)}"
                            for p in self.precisions())
            raise UserError(f"target {self.key} cannot run precision {precision!r}: its engines run {can}; "
                            "choose one of those precisions")
        return found

    def check_memory(self, needed_bytes: float, what: str = "the model") -> None:
        """UserError when ``needed_bytes`` exceed the target's memory (unknown memory: no check)."""
        have = self.memory_bytes
        if have and needed_bytes > have:
            raise UserError(f"{what} needs {needed_bytes / 2**20:.0f} MiB but {self.key} has "
                            f"{have / 2**20:.0f} MiB of memory; quantize it (precision: int8) or choose a larger target")

    def to_dict(self) -> dict:
        return {"key": self.key, "isa": self.isa, "native": self.native, "device": self.device.name,
                "memory_bytes": self.memory_bytes, "qemu_cpu": self.qemu_cpu,
                "runtimes": [r.__dict__ for r in self.runtimes]}


def host_isa() -> str:
    m = platform.machine().lower()
    return {"x86_64": "x86-64", "amd64": "x86-64", "arm64": "aarch64"}.get(m, m)


def _arm_cpu(*, int8: bool = True) -> tuple[Runtime, ...]:
    p = ("fp32", "int8") if int8 else ("fp32",)
    return (Runtime(engine="onnxruntime", unit="cpu", precisions=p, artefact=ARM_CPU_ARTEFACT, check="emulated"),
            Runtime(engine="ncnn", unit="cpu", precisions=("fp32", "fp16"), artefact="ncnn .param/.bin (pnnx)",
                    check="emulated"))


_TRT = "QDQ ONNX + TensorRT build settings (trtexec line, builder script, calibration cache)"
_BY_KEY = {d.key: d for d in DEVICES}
TARGETS: dict[str, Target] = {t.key: t for t in (
    Target(key="rk3588", isa="aarch64", device=_BY_KEY["rk3588"], qemu_cpu="cortex-a76", runtimes=(
        Runtime(engine="rknn", unit="npu", precisions=("int8", "fp16"), artefact=".rknn for rk3588 (RKNN-Toolkit2)",
                check="simulated"),
        *_arm_cpu())),
    Target(key="raspberry-pi-5", isa="aarch64", device=_BY_KEY["raspberry-pi-5"], qemu_cpu="cortex-a76",
           runtimes=_arm_cpu()),
    # Maxwell has no INT8 tensor path: TensorRT runs FP16/FP32 there.
    Target(key="jetson-nano", isa="aarch64", device=_BY_KEY["jetson-nano"], qemu_cpu="cortex-a57", runtimes=(
        Runtime(engine="tensorrt", unit="gpu", precisions=("fp16", "fp32"), artefact=_TRT.replace("QDQ ", ""),
                check="stand-in"),
        *_arm_cpu())),
    Target(key="jetson-orin-nano", isa="aarch64", device=_BY_KEY["jetson-orin-nano"], qemu_cpu="cortex-a76",
           runtimes=(Runtime(engine="tensorrt", unit="gpu", precisions=("int8", "fp16", "fp32"), artefact=_TRT,
                             check="stand-in"),
                     *_arm_cpu())),
)}
ALIASES = {a: t.key for t in TARGETS.values() for a in t.device.aliases}
LOCAL_NAMES = ("local", "this", "localhost", "x86", "host")


def local_target() -> Target:
    """This machine as a target: every installed edgedeploy engine, measured here."""
    from edgedeploy import engines

    runtimes = tuple(Runtime(engine=name, unit="cpu", precisions=spec.precisions, artefact=f"{name} model",
                             check="measured")
                     for name, spec in engines.ENGINES.items() if engines.available(name))
    return Target(key="local", isa=host_isa(), device=local(bandwidth=False), runtimes=runtimes)


def names() -> list[str]:
    return [*TARGETS, "local"]


def target(name: str | Target) -> Target:
    """The target called ``name`` (key or alias, any case; "local"/"x86" = this machine)."""
    if isinstance(name, Target):
        return name
    wanted = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if wanted in LOCAL_NAMES:
        return local_target()
    key = ALIASES.get(wanted, wanted)
    if key in TARGETS:
        return TARGETS[key]
    if key in _BY_KEY:
        raise UserError(f"{name!r} is a known device ({_BY_KEY[key].name}, {_BY_KEY[key].stack}) but not a deployment "
                        f"target: edgedeploy cannot build or check its artefacts here; targets: {', '.join(names())}")
    raise UserError(f"unknown target {name!r}{did_you_mean(wanted, [*names(), *ALIASES])}; "
                    f"choose one of {', '.join(names())}")
