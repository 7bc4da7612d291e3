"""The best untuned engine vs edgedeploy's choice, side by side: anchors are candidates, the rule holds."""

from __future__ import annotations

from edgedeploy.deploy import versus
from edgedeploy.engines.timing import clears_noise
from edgedeploy.hardware.isa import Isa

NO_BF16 = Isa(model="x", vendor="GenuineIntel", family=6, cores=2, clock_ghz=2.0, flags=frozenset({"avx2", "fma"}))
BF16 = Isa(model="x", vendor="GenuineIntel", family=6, cores=2, clock_ghz=2.0,
           flags=frozenset({"avx2", "fma", "avx512f", "avx512_bf16"}))


def test_candidates_follow_the_isa(tiny_onnx):
    plain = versus.candidates(str(tiny_onnx), (1, 3, 16, 16), threads=1, isa=NO_BF16)
    assert "onnxruntime default (anchor)" in plain and not any("bf16" in k for k in plain)
    assert any("bf16" in k for k in versus.candidates(str(tiny_onnx), (1, 3, 16, 16), threads=1, isa=BF16))


def test_the_choice_is_the_anchor_unless_a_tuned_plan_clears_the_noise_band(tiny_onnx):
    v = versus.compare(str(tiny_onnx), shape=(1, 3, 16, 16), threads=1, rounds=1, block=3, isa=NO_BF16)
    assert v.latency[v.anchor].median_ms == min(x.median_ms for k, x in v.latency.items() if "(anchor)" in k)
    if v.choice != v.anchor:
        assert clears_noise(v.latency[v.choice].interval, v.latency[v.anchor].interval)
    assert v.ratio >= 1.0 or v.choice == v.anchor
    assert all(x.memory_mb is not None for x in v.latency.values())
