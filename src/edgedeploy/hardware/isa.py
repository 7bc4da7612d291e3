"""This CPU's instruction set and its estimated compute peak per precision.

:func:`detect` reads ``/proc/cpuinfo`` (flags, vendor, family, model name) and the clock
(``cpufreq``'s maximum where the kernel exposes it, else the ``cpu MHz`` line), and counts the
cores this process may use. :meth:`Isa.peak_gflops` turns that into a peak for a precision:

    peak = cores x clock (GHz) x operations per cycle per core

where operations per cycle = FMA-capable vector units x lanes x 2 (a fused multiply-add is
two operations), by the widest path the CPU has for that precision:

- FP32: AVX-512 (16 lanes) or AVX2 (8 lanes), 2 FMA units; AMD Zen 2-4 run 512-bit vectors
  through 256-bit units (8 lanes effective), Zen 5 has full-width units.
- BF16: AVX512_BF16 ``vdpbf16ps`` (2x the FP32 lanes); AMX-BF16 tiles: 1024 per cycle.
- INT8: AVX-512 VNNI ``vpdpbusd`` (4x the FP32 lanes); AVX2 without VNNI: 2x; AMX-INT8: 2048.
- FP16: AVX512_FP16 (2x FP32 lanes); else the FP32 path (converted on load).

It is an *estimate*: vendor figures per microarchitecture, the nominal or maximum clock
(not the clock under an all-core vector load), no memory bandwidth limit. Shares of it say
whether a model is compute-bound (near it), memory- or overhead-bound (far below).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
         "amx_tile", "amx_bf16", "amx_int8")
METHOD = ("estimated peak = cores x clock x FMA units x vector lanes x 2, by the widest path the detected ISA "
          "has for the precision (AVX-512/AVX2, AVX512_BF16, VNNI, AMX tiles); nominal/max clock, no memory limit")


@dataclass(frozen=True)
class Isa:
    """What the CPU offers. ``flags``: the subset of :data:`FLAGS` present; ``clock_ghz``: max or nominal."""

    model: str
    vendor: str
    family: int
    cores: int
    clock_ghz: float
    flags: frozenset[str] = field(default_factory=frozenset)

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def method(self) -> str:
        """How :meth:`peak_gflops` is estimated (for reports)."""
        return f"{METHOD}; here: {self.cores} cores x {self.clock_ghz:g} GHz, {self.kind}"

    @property
    def amx(self) -> bool:
        return self.has("amx_tile") and (self.has("amx_bf16") or self.has("amx_int8"))

    @property
    def native_bf16(self) -> bool:
        return self.has("avx512_bf16") or self.has("amx_bf16")

    @property
    def int8_dot(self) -> bool:
        """Whether the CPU has an INT8 dot-product instruction (VNNI or AMX): INT8 pays on it."""
        return self.has("avx512_vnni") or self.has("avx_vnni") or self.has("amx_int8")

    @property
    def kind(self) -> str:
        """A file-name-safe name of the CPU kind, e.g. ``amd-epyc-avx512vnni-bf16`` or ``intel-xeon-amx``."""
        name = re.sub(r"\((r|tm)\)|cpu|processor|@.*$|\d+-core", " ", self.model.lower())
        words = [w for w in re.split(r"[^a-z0-9]+", name) if w][:2] or [self.vendor.lower() or "cpu"]
        if self.amx:
            isa = ["amx"]
        elif self.has("avx512f"):
            isa = ["avx512" + ("vnni" if self.has("avx512_vnni") else "")]
            isa += ["bf16"] if self.has("avx512_bf16") else []
            isa += ["fp16"] if self.has("avx512_fp16") else []
        else:
            isa = ["avx2" + ("vnni" if self.has("avx_vnni") else "")] if self.has("avx2") else ["generic"]
        return "-".join(words + isa)

    def fp32_lanes(self) -> int:
        """Effective FP32 lanes per FMA unit per cycle."""
        if self.has("avx512f"):
            half_width = self.vendor == "AuthenticAMD" and self.family < 0x1A  # Zen 2-4: 256-bit datapaths
            return 8 if half_width else 16
        return 8 if self.has("avx2") else 4

    def ops_per_cycle(self, precision: str) -> tuple[int, str]:
        """(operations per cycle per core, the path) for ``precision`` (fp32, bf16, fp16, int8)."""
        fp32 = 2 * self.fp32_lanes() * 2  # 2 FMA units x lanes x 2 operations
        if precision == "int8":
            if self.has("amx_int8"):
                return 2048, "AMX-INT8 tiles"
            if self.int8_dot:
                return 4 * fp32, "VNNI dot products"
            return 2 * fp32, "INT8 via 16-bit multiply-add"
        if precision == "bf16":
            if self.has("amx_bf16"):
                return 1024, "AMX-BF16 tiles"
            if self.has("avx512_bf16"):
                return 2 * fp32, "AVX512_BF16 dot products"
            return fp32, "no native BF16: FP32 path"
        if precision == "fp16" and self.has("avx512_fp16"):
            return 2 * fp32, "AVX512_FP16"
        return fp32, "AVX-512 FMA" if self.has("avx512f") else ("AVX2 FMA" if self.has("avx2") else "SSE")

    def peak_gflops(self, precision: str = "fp32") -> float:
        """Estimated peak GFLOP/s (GOP/s for INT8) of the cores this process may use; see :data:`METHOD`."""
        return self.cores * self.clock_ghz * self.ops_per_cycle(str(precision))[0]

    def to_dict(self) -> dict:
        return {"model": self.model, "vendor": self.vendor, "family": self.family, "cores": self.cores,
                "clock_ghz": self.clock_ghz, "flags": sorted(self.flags), "kind": self.kind,
                "peak_gflops": {p: round(self.peak_gflops(p), 1) for p in ("fp32", "bf16", "int8")},
                "method": METHOD}


def parse(cpuinfo: str, *, cores: int, max_khz: int | None = None) -> Isa:
    """The :class:`Isa` described by ``cpuinfo`` (the text of ``/proc/cpuinfo``)."""

    def field_(name: str, default: str = "") -> str:
        m = re.search(rf"^{name}\s*:\s*(.*)$", cpuinfo, re.M)
        return m.group(1).strip() if m else default

    flags = frozenset(field_("flags").split()) & frozenset(FLAGS)
    mhz = float(field_("cpu MHz", "0") or 0)
    clock = max_khz / 1e6 if max_khz else (mhz / 1000 if mhz else 2.0)
    family = field_("cpu family", "0")
    return Isa(model=field_("model name", "unknown CPU"), vendor=field_("vendor_id"),
               family=int(family) if family.isdigit() else 0, cores=cores, clock_ghz=round(clock, 2), flags=flags)


@cache
def detect() -> Isa:
    """This machine's :class:`Isa` (read once per process)."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    max_khz = int(freq.read_text().strip()) if freq.exists() and freq.read_text().strip().isdigit() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return parse(text, cores=cores, max_khz=max_khz)
