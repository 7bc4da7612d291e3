"""Run an artefact on aarch64 before it ships: qemu-aarch64 in an arm64 root with the same engine versions.

The root (``scripts/setup.sh --arm64``) holds Debian bookworm's arm64 python3 and the aarch64
wheels of the onnxruntime, numpy and ncnn versions edgedeploy pins, under
``<cache>/arm64-rootfs``. :class:`EmulatedSession` is an ordinary :class:`Session` whose model
runs there, so the task metric comes from :func:`edgedeploy.evaluation.runner.evaluate` with ARM's
kernels (INT8 rounding differs on ARM: that is why this exists). Emulated time means nothing and
is never reported.

>>> with EmulatedSession("model.onnx", cpu="cortex-a76") as s:
...     outs = s.run(feeds)               # computed by ORT's aarch64 build
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from edgedeploy.engines.base import Session
from edgedeploy.errors import UserError
from edgedeploy.targets.worker import WorkerSession

log = logging.getLogger(__name__)

ENABLE = "scripts/setup.sh --arm64"
SITE = "opt/edgedeploy/site"  # inside the root: where the aarch64 wheels are installed
STAMP = "opt/edgedeploy/versions.json"  # written by setup.sh: what the root holds
WORKER = Path(__file__).with_name("arm_worker.py")


def rootfs() -> Path:
    """Where the arm64 root lives (outside the repository, in edgedeploy's cache)."""
    from edgedeploy.zoo import cache_dir

    return cache_dir() / "arm64-rootfs"


def qemu() -> str | None:
    return shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


def versions() -> dict:
    """The engine versions installed in the root (empty when there is no root)."""
    try:
        return json.loads((rootfs() / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def unavailable() -> str | None:
    """None when emulation works here; else why not, with the command that enables it."""
    if qemu() is None:
        return f"qemu-aarch64 is not installed (Debian: qemu-user-static); run {ENABLE}"
    root = rootfs()
    if not (root / "usr/bin/python3").exists() or not versions():
        return f"no arm64 root at {root}; run {ENABLE} (about 1 minute, 150 MB)"
    import onnxruntime

    have = versions().get("onnxruntime")
    if have != onnxruntime.__version__:
        return (f"the arm64 root has onnxruntime {have}, this machine {onnxruntime.__version__}: "
                f"rebuild it with {ENABLE}")
    return None


# What each emulated core tells a program about itself. qemu-user shows the program the host's
# /proc/cpuinfo unless the root has its own, and ORT picks its ARM kernels from it: a file that
# claims dot-product instructions on a core without them ends in SIGILL (Cortex-A57 is ARMv8.0).
_CPUS = {  # qemu -cpu: (CPU part, Features)
    "cortex-a53": ("0xd03", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
    "cortex-a57": ("0xd07", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
    "cortex-a72": ("0xd08", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
    "cortex-a76": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                            "lrcpc dcpop asimddp"),
    "neoverse-n1": ("0xd0c", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                             "lrcpc dcpop asimddp"),
}


def _describe_cpu(root: Path, cpu: str) -> None:
    """Make the root's /proc/cpuinfo describe ``cpu`` (written only when it differs; atomic)."""
    import os

    part, features = _CPUS.get(cpu, _CPUS["cortex-a76"])
    text = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                   f"CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: {part}\nCPU revision\t: 1\n\n"
                   for i in range(os.cpu_count() or 1))
    path = root / "proc" / "cpuinfo"
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"cpuinfo.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def require() -> None:
    why = unavailable()
    if why:
        raise UserError(f"cannot verify on aarch64: {why}")


class EmulatedSession(WorkerSession):
    """A model running in the arm64 root under qemu-aarch64 (``engine`` "onnxruntime" or "ncnn").

    ``model``: an ONNX file (onnxruntime) or an ncnn ``.param`` (its ``.bin`` beside it).
    ``like``: an open host session of the same model, whose tensor specs this session takes
    (ncnn's own blob names are in0/out0; the host session knows the model's names and shapes).
    """

    def __init__(self, model: str | Path, *, engine: str = "onnxruntime", cpu: str = "cortex-a76",
                 threads: int = 1, precision: str = "fp32", like: Session | None = None):
        require()
        root = rootfs()
        _describe_cpu(root, cpu)
        args = [qemu(), "-cpu", cpu, "-L", str(root), "-E", f"PYTHONPATH=/{SITE}",
                str(root / "usr/bin/python3"), str(WORKER), engine, str(Path(model).resolve()), str(threads), precision]
        super().__init__(args, engine=f"{engine}@qemu-aarch64", what=f"{engine} under qemu-aarch64", like=like,
                         notes=[f"emulated: {engine} {{version}} {precision} on {{machine}} (qemu -cpu {cpu}); "
                                "outputs only, its timings mean nothing"])
