"""ISA detection from /proc/cpuinfo text, the CPU-kind name and the estimated peak per precision."""

from __future__ import annotations

from edgedeploy.hardware.isa import detect, parse

AMD = """vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC 9R14 96-Core Processor
cpu MHz\t\t: 2600.000
flags\t\t: fpu sse avx2 fma avx512f avx512vl avx512_bf16 avx512_vnni
"""
INTEL = """vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) Platinum 8488C
cpu MHz\t\t: 2400.000
flags\t\t: fpu avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8
"""


def test_kind_names_the_cpu_and_what_pays_on_it():
    amd, intel = parse(AMD, cores=2), parse(INTEL, cores=2)
    assert amd.kind == "amd-epyc-avx512vnni-bf16" and intel.kind == "intel-xeon-amx"
    assert amd.native_bf16 and amd.int8_dot and not amd.amx
    assert intel.amx and intel.native_bf16


def test_peak_follows_the_widest_path_for_each_precision():
    amd, intel = parse(AMD, cores=2), parse(INTEL, cores=2, max_khz=3_800_000)
    # Zen 4 (family 25): AVX-512 on 256-bit units: 2 FMA x 8 lanes x 2 = 32 FP32 operations per cycle
    assert amd.peak_gflops("fp32") == 2 * 2.6 * 32 and amd.peak_gflops("int8") == 4 * amd.peak_gflops("fp32")
    assert intel.clock_ghz == 3.8 and intel.peak_gflops("fp32") == 2 * 3.8 * 64
    assert intel.peak_gflops("bf16") == 2 * 3.8 * 1024 and intel.peak_gflops("int8") == 2 * 3.8 * 2048  # AMX tiles
    old = parse("flags\t: avx2 fma\n", cores=4)
    assert old.kind.endswith("avx2") and old.ops_per_cycle("bf16")[1].startswith("no native BF16")


def test_this_machine_is_detected():
    isa = detect()
    assert isa.cores >= 1 and isa.peak_gflops("fp32") > 0 and isa.kind
