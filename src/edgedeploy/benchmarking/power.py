"""Power while a block of code runs: measured from a real sensor where one exists, else estimated.

Sensors: Intel RAPL through powercap (``/sys/class/powercap/intel-rapl:N/energy_uj``, the
package energy counter; Linux exposes AMD's RAPL there too) and Jetson ``tegrastats`` for CPU
work; NVIDIA NVML (``pynvml``) and ``tegrastats`` for GPU work. Without any, the figure is an estimate from CPU utilisation and a
:class:`DeviceProfile`: ``idle + (TDP - idle) x utilisation`` — and it is always labelled so.

    >>> with measure() as p:
    ...     work()
    >>> p.watts, p.source        # 3.1, "estimated: ..." or "measured: RAPL package"
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True, kw_only=True)
class DeviceProfile:
    """What an estimate assumes about the CPU: watts per core at full load, and the idle share."""

    name: str
    cores: int
    tdp_per_core_w: float
    idle_fraction: float  # idle power as a share of TDP
    basis: str  # where the per-core figure comes from

    @property
    def tdp_w(self) -> float:
        return self.cores * self.tdp_per_core_w

    @property
    def idle_w(self) -> float:
        return self.tdp_w * self.idle_fraction

    def estimate(self, utilisation: float) -> float:
        """Watts at ``utilisation`` (0..1 of this profile's cores)."""
        u = min(max(utilisation, 0.0), 1.0)
        return self.idle_w + (self.tdp_w - self.idle_w) * u


# CPU model name pattern -> (assumed W per core at TDP, basis). First match wins.
_PER_CORE_W: tuple[tuple[str, float, str], ...] = (
    (r"EPYC", 3.75, "AMD EPYC 9654: 360 W TDP / 96 cores"),
    (r"Xeon", 5.8, "Intel Xeon Platinum 8480+: 350 W TDP / 60 cores"),
    (r"Core\(TM\) i7-1165G7", 7.0, "Intel i7-1165G7: 28 W TDP / 4 cores"),
    (r"Cortex-A7[68]|ARMv8", 1.5, "Arm Cortex-A76/A78 class: ~1.5 W per core under load"),
    (r"", 8.0, "generic x86 desktop: 65 W TDP / 8 cores"),
)


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or "unknown CPU"
    m = re.search(r"^(model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
    return m.group(2).strip() if m else "unknown CPU"


def this_machine() -> DeviceProfile:
    """The profile for this machine: the cores this process may use, and an assumed TDP per core."""
    name = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (psutil.cpu_count() or 1)
    per_core, basis = next((w, b) for pattern, w, b in _PER_CORE_W if re.search(pattern, name))
    return DeviceProfile(name=name, cores=cores, tdp_per_core_w=per_core, idle_fraction=0.25, basis=basis)


@dataclass
class PowerReading:
    """Filled in when the ``measure()`` block ends. ``source`` starts with "measured:" or "estimated:"."""

    watts: float | None = None
    source: str = ""
    measured: bool = False
    seconds: float = 0.0
    utilisation: float = 0.0  # this process's CPU time / (wall time x cores), 0..1

    @property
    def label(self) -> str:
        return "measured" if self.measured else "estimated"


class RaplSensor:
    """Package energy from powercap; sums all packages; handles counter wraparound."""

    name = "RAPL package"

    def __init__(self, root: Path = POWERCAP):
        self.root = Path(root)
        self.domains = sorted(p for p in self.root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
        self._start: list[int] = []

    def unavailable(self) -> str | None:
        if not self.domains:
            return f"no RAPL package domains under {self.root}"
        try:
            self._read()
        except PermissionError:
            return f"RAPL present but {self.domains[0] / 'energy_uj'} is not readable (root only since Linux 5.10)"
        except (OSError, ValueError) as exc:
            return f"RAPL unreadable: {exc}"
        return None

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def start(self) -> None:
        self._start = self._read()

    def stop(self, seconds: float) -> float:
        """Average watts since :meth:`start`."""
        joules = 0.0
        for d, before, after in zip(self.domains, self._start, self._read()):
            if after < before:  # the counter wrapped at max_energy_range_uj
                after += int((d / "max_energy_range_uj").read_text())
            joules += (after - before) / 1e6
        return joules / seconds


class NvmlSensor:
    """GPU board power from NVML: the total-energy counter (Volta and newer), else sampled power."""

    name = "NVML GPU board"

    def __init__(self, index: int = 0):
        self.index = index
        self._nv = self._handle = None
        self._e0 = 0
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def unavailable(self) -> str | None:
        try:
            import pynvml
        except ImportError:
            return "pynvml not installed"
        try:
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except pynvml.NVMLError as exc:  # no driver, no device: NVML's own error types, all NVMLError
            return f"NVML unavailable: {exc}"
        self._nv = pynvml
        return None

    def start(self) -> None:
        try:
            self._e0 = self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)  # mJ
        except self._nv.NVMLError:  # older GPUs have no energy counter: sample instantaneous power instead
            self._e0 = -1
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._samples.append(self._nv.nvmlDeviceGetPowerUsage(self._handle) / 1000)

    def stop(self, seconds: float) -> float:
        if self._e0 >= 0:
            return (self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._e0) / 1000 / seconds
        self._stop.set()
        self._thread.join()
        return sum(self._samples) / max(len(self._samples), 1)


class TegrastatsSensor:
    """Jetson board input power from ``tegrastats`` (VDD_IN / POM_5V_IN rails), sampled every 100 ms."""

    name = "Jetson tegrastats VDD_IN"
    RAIL = re.compile(r"\b(?:VDD_IN|POM_5V_IN|VIN_SYS_5V0)\s+(\d+)mW")

    def __init__(self, binary: str = "tegrastats"):
        self.binary = shutil.which(binary)
        self._proc: subprocess.Popen | None = None
        self._samples: list[float] = []
        self._thread: threading.Thread | None = None

    def unavailable(self) -> str | None:
        return None if self.binary else "no tegrastats binary on PATH"

    @classmethod
    def parse(cls, line: str) -> float | None:
        """Watts from one tegrastats line, or None."""
        m = cls.RAIL.search(line)
        return int(m.group(1)) / 1000 if m else None

    def start(self) -> None:
        self._proc = subprocess.Popen([self.binary, "--interval", "100"], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            w = self.parse(line)
            if w is not None:
                self._samples.append(w)

    def stop(self, seconds: float) -> float | None:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._thread.join(timeout=5)
        return sum(self._samples) / len(self._samples) if self._samples else None


def find_sensor(device: str = "cpu", *, sysfs_root: Path = POWERCAP):
    """(the first sensor for ``device`` that works, or None; why each one did not).

    CPU work is read from RAPL (package) or tegrastats (whole board); GPU work from NVML or
    tegrastats. A GPU's board power says nothing about a CPU benchmark, so it is not used for one.
    """
    reasons = []
    candidates = (RaplSensor(sysfs_root), TegrastatsSensor()) if device == "cpu" else (NvmlSensor(), TegrastatsSensor())
    for sensor in candidates:
        why = sensor.unavailable()
        if why is None:
            return sensor, reasons
        reasons.append(why)
    return None, reasons


@contextmanager
def measure(device: str = "cpu", *, sysfs_root: Path = POWERCAP,
            profile: DeviceProfile | None = None) -> Iterator[PowerReading]:
    """Average power over the block: ``reading.watts`` and ``reading.source`` are set when it ends.

    A sensor measures the whole package/board (other processes included); the estimate
    covers this process only, from its CPU time.
    """
    reading = PowerReading()
    sensor, reasons = find_sensor(device, sysfs_root=sysfs_root)
    profile = profile or this_machine()
    proc = psutil.Process()
    if sensor is not None:
        sensor.start()
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
    try:
        yield reading
    finally:
        reading.seconds = max(time.perf_counter() - t0, 1e-9)
        reading.utilisation = (sum(proc.cpu_times()[:2]) - cpu0) / reading.seconds / profile.cores
        watts = sensor.stop(reading.seconds) if sensor is not None else None
        if watts is not None:
            reading.watts, reading.measured, reading.source = watts, True, f"measured: {sensor.name}"
        else:
            reading.watts = profile.estimate(reading.utilisation)
            reading.source = (f"estimated: {profile.idle_w:.1f} W idle + ({profile.tdp_w:.1f} - {profile.idle_w:.1f}) W "
                              f"x {reading.utilisation:.0%} CPU, {profile.cores} cores x {profile.tdp_per_core_w} W "
                              f"assumed ({profile.basis}); no sensor: {'; '.join(reasons)}")
