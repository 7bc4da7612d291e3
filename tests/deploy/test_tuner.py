"""The search, its pruning and its choice, with injected measurements (no engine runs)."""

from __future__ import annotations

import pytest

from edgedeploy.deploy import config
from edgedeploy.deploy.tuner import Measurement, Variant, choose, tune

# latency at 1 thread, batch 1, per (engine, precision); memory MiB; W per thread
SPEED = {("onnxruntime", "fp32"): 8.0, ("openvino", "fp32"): 6.0, ("openvino", "bf16"): 4.0, ("openvino", "fp16"): 4.4}


def fake_measure(calls):
    def measure(cands, stage):
        out = []
        for c in cands:
            calls.append((stage, c.label))
            lat = SPEED[(c.engine, c.precision)] / (1.6 if c.threads == 2 else 1) * (0.8 * c.batch if c.batch > 1 else 1)
            mem = (30 if c.engine == "onnxruntime" else 50) * 2**20 * c.batch
            out.append(Measurement(candidate=c, ok=True, stage=stage, latency_ms={"p50": lat, "p99": lat * 1.2},
                                   memory_bytes=mem, power_w=2.0 + 1.6 * c.threads,
                                   throughput=1000 * c.batch / lat, accuracy=0.99 if c.precision == "fp32" else 0.985))
        return out
    return measure


def produce(model, engine, precision):
    if precision == "int8" or (engine == "onnxruntime" and precision != "fp32"):
        return "needs edgedeploy.optimize"
    return Variant(model=str(model.path), runtime_precision=precision)


@pytest.fixture
def cfg(tmp_path, tiny_onnx, seed_yaml):
    def make(**kw):
        path = seed_yaml(tmp_path / "c.yaml", model=tiny_onnx, hardware="local", **kw)
        path.write_text(path.read_text().replace("  thread_num: 4\n", "  thread_num: 4\n  input_shape: 32x32\n  engines: [onnxruntime, openvino, paddle]\n"))
        return config.load(path)
    return make


def test_picks_fastest_that_meets_every_target_and_prunes(cfg):
    calls = []
    c = cfg()
    r = tune(c, measure=fake_measure(calls), produce=produce, cores=2)
    assert r.met
    # power ≤ 5 W rules out 2 threads (5.2 W); bf16 at 1 thread is the fastest that meets everything
    assert r.chosen.candidate.label == "openvino bf16 t1 b1"
    pruned = {p.what: p.reason for p in r.pruned}
    assert "int8" in " ".join(pruned) and "paddle" in pruned
    assert "openvino fp16" in pruned and "dominated by openvino bf16" in pruned["openvino fp16"]
    assert sum(stage == "screen" for stage, _ in calls) == 4 and not any("fp16" in lbl for s, lbl in calls if s == "expand")


def test_unmet_targets_give_the_closest(cfg):
    r = tune(cfg(latency="1ms"), measure=fake_measure([]), produce=produce, cores=2)
    assert not r.met and r.chosen is not None
    assert r.chosen.candidate.engine == "openvino" and not all(c.met for c in r.checks)
    assert any("already misses" in p.reason for p in r.pruned)


def test_ties_go_to_lower_latency_then_memory(cfg):
    c = cfg()
    base = fake_measure([])
    from edgedeploy.deploy.tuner import Candidate

    def m(engine, lat, mem, thr):
        cand = Candidate(engine=engine, precision="fp32", threads=1, batch=1, variant=Variant(model="x"), shape=(1, 3))
        return Measurement(candidate=cand, ok=True, latency_ms={"p50": lat}, memory_bytes=mem, power_w=1.0,
                           throughput=thr)

    a, b, d = m("a", 5.0, 40e6, 200.0), m("b", 4.9, 50e6, 199.0), m("c", 4.9, 45e6, 198.0)
    chosen, met = choose([a, b, d], c, None)
    assert met and chosen is d  # within 3% throughput: lower latency (b, c), then lower memory (c)
    del base
