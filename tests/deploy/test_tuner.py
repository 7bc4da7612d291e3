"""The search, its pruning and its choice, with injected measurements (no engine runs)."""

from __future__ import annotations

import pytest

from edgedeploy.deploy import config
from edgedeploy.deploy.tuner import Measurement, Variant, check_targets, choose, tune
from edgedeploy.engines.timing import clears_noise
from edgedeploy.hardware.isa import Isa

# a CPU with AVX-512 VNNI and BF16 (no AMX), and one with AVX2 only: the search must follow the ISA
AVX512_BF16 = Isa(model="Test CPU", vendor="GenuineIntel", family=6, cores=2, clock_ghz=2.0,
                  flags=frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}))
AVX2 = Isa(model="Old CPU", vendor="GenuineIntel", family=6, cores=2, clock_ghz=2.0, flags=frozenset({"avx2", "fma"}))

# latency at 1 thread, batch 1, per (engine, precision); memory MiB; W per thread
SPEED = {("onnxruntime", "fp32"): 8.0, ("openvino", "fp32"): 6.0, ("openvino", "bf16"): 4.0, ("openvino", "fp16"): 4.4}


def fake_measure(calls, power_measured=True):
    def measure(cands, stage):
        out = []
        for c in cands:
            calls.append((stage, c.label))
            threads = c.threads or 2  # an anchor: the engine's default, all cores
            key = ("openvino", "bf16") if c.untuned and c.engine == "openvino" else (c.engine, c.options.precision)
            lat = SPEED[key] / (1.6 if threads == 2 else 1) * (0.8 * c.batch if c.batch > 1 else 1)
            mem = (30 if c.engine == "onnxruntime" else 50) * 2**20 * c.batch
            out.append(Measurement(plan=c, ok=True, stage=stage, latency_ms={"p50": lat, "p99": lat * 1.2},
                                   memory_bytes=mem, power_w=2.0 + 1.6 * threads, power_measured=power_measured,
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
    r = tune(c, measure=fake_measure(calls), produce=produce, cores=2, isa=AVX512_BF16)
    assert r.met
    # power ≤ 5 W rules out 2 threads (5.2 W); bf16 at 1 thread is the fastest that meets everything
    assert r.chosen.plan.label == "openvino bf16 t1 b1"
    pruned = {p.what: p.reason for p in r.pruned}
    assert "int8" in " ".join(pruned) and "paddle" in pruned
    assert "openvino fp16" in pruned and "dominated by openvino bf16" in pruned["openvino fp16"]
    assert sum(stage == "screen" for stage, _ in calls) == 4 and not any("fp16" in lbl for s, lbl in calls if s == "expand")
    assert "memory_optimization is on" in pruned["engine defaults (anchors)"]  # the seed's YAML asks for it
    # without it, the 2 engines' own defaults are screened too (5.2 W at all cores: over the 5 W target)
    c = c.model_copy(update={"deployment": c.deployment.model_copy(update={"memory_optimization": False})})
    calls.clear()
    r = tune(c, measure=fake_measure(calls), produce=produce, cores=2, isa=AVX512_BF16)
    assert {lbl for s, lbl in calls if s == "screen"} >= {"onnxruntime default (anchor)", "openvino default (anchor)"}
    assert r.chosen.plan.label == "openvino bf16 t1 b1"


def test_unmet_targets_give_the_closest(cfg):
    r = tune(cfg(latency="1ms"), measure=fake_measure([]), produce=produce, cores=2, isa=AVX512_BF16)
    assert not r.met and r.chosen is not None
    assert r.chosen.plan.engine == "openvino" and not all(c.met for c in r.checks)
    assert any("already misses" in p.reason for p in r.pruned)


def test_ties_go_to_lower_latency_then_memory(cfg):
    c = cfg()
    base = fake_measure([])
    from edgedeploy.plan import DeploymentPlan

    def m(engine, lat, mem, thr):
        plan = DeploymentPlan(engine=engine, precision="fp32", model="x", batch=1, shape=(1, 3))
        return Measurement(plan=plan, ok=True, latency_ms={"p50": lat}, memory_bytes=mem, power_w=1.0,
                           throughput=thr)

    a, b, d = m("onnxruntime", 5.0, 40e6, 200.0), m("openvino", 4.9, 50e6, 199.0), m("paddle", 4.9, 45e6, 198.0)
    chosen, met = choose([a, b, d], c, None)
    assert met and chosen is d  # within 3% throughput: lower latency (b, c), then lower memory (c)
    del base


def _m(threads, lat, *, power, measured, band=0.0, mem=30e6):
    from edgedeploy.plan import DeploymentPlan

    plan = DeploymentPlan(engine="onnxruntime", precision="fp32", model="x", options={"threads": threads},
                          batch=1, shape=(1, 3))
    return Measurement(plan=plan, ok=True, latency_ms={"p50": lat, "p50_low": lat - band, "p50_high": lat + band},
                       memory_bytes=mem, power_w=power, power_measured=measured, throughput=1000 / lat)


def test_an_estimate_never_picks_the_slower_plan_and_the_policy_decides_the_verdict(cfg):
    c = cfg()  # power_consumption: 5W; no sensor: the 2-thread plan's estimated 5.2 W cannot rule it out
    fast, slow = _m(2, 2.0, power=5.2, measured=False), _m(1, 4.0, power=3.6, measured=False)
    chosen, met = choose([slow, fast], c, None)
    assert chosen is fast and met  # policy warn: reported unverifiable, passes
    assert {x.name: x.status for x in check_targets(fast, c, None)}["power"] == "unverifiable"
    strict = c.model_copy(update={"performance": c.performance.model_copy(update={"estimated": "fail"})})
    chosen, met = choose([slow, fast], strict, None)
    assert chosen is fast and not met  # the same choice; the verdict follows the policy
    # a measured power figure does decide
    chosen, met = choose([_m(1, 4.0, power=3.6, measured=True), _m(2, 2.0, power=5.2, measured=True)], c, None)
    assert chosen.plan.threads == 1 and met


def test_latency_is_met_only_when_its_noise_band_clears_the_target(cfg):
    c = cfg(latency="10ms")
    assert {x.name: x.met for x in check_targets(_m(1, 9.0, power=1, measured=True, band=0.5), c, None)}["latency"]
    assert not {x.name: x.met for x in check_targets(_m(1, 9.0, power=1, measured=True, band=2.0), c, None)}["latency"]


def test_plans_within_each_others_noise_are_tied_and_the_one_using_less_wins(cfg):
    c = cfg()
    one, two = _m(1, 2.10, power=1, measured=True, band=0.2), _m(2, 2.0, power=1, measured=True, band=0.2)
    assert choose([two, one], c, None)[0] is one and choose([one, two], c, None)[0] is one
    clearly = _m(2, 1.0, power=1, measured=True, band=0.1)
    assert choose([one, clearly], c, None)[0] is clearly


def test_a_less_precise_plan_is_taken_only_when_clearly_faster(cfg):
    from edgedeploy.plan import DeploymentPlan

    def m(precision, lat):
        plan = DeploymentPlan(engine="openvino", precision=precision, model="x", options={"threads": 2},
                              batch=1, shape=(1, 3))
        return Measurement(plan=plan, ok=True, latency_ms={"p50": lat, "p50_low": lat * 0.99, "p50_high": lat * 1.01},
                           memory_bytes=30e6, power_w=1.0, power_measured=True, throughput=1000 / lat)

    c = cfg()  # PP-LCNet's figures: INT8 6% ahead of FP16, clear of both intervals, within what runs move by
    assert choose([m("int8", 0.554), m("fp16", 0.588)], c, None)[0].plan.precision == "fp16"
    assert choose([m("fp16", 0.588), m("int8", 0.554)], c, None)[0].plan.precision == "fp16"
    assert choose([m("int8", 0.45), m("fp16", 0.588)], c, None)[0].plan.precision == "int8"  # 23% faster: taken
    # the band favours precision only: between plans of one precision the 3% rule stands
    assert choose([m("fp16", 0.554), m("fp16", 0.588)], c, None)[0].latency() == 0.554


def test_a_latency_miss_the_machine_load_explains_is_unverifiable_not_missed(cfg):
    c = cfg(latency="10ms")
    busy = _m(1, 14.0, power=1, measured=True, band=1.0)
    busy.others_load = 0.7  # 13 ms / 2 (the most a load is allowed to explain) = 6.5 ms: the load explains it
    assert {x.name: x.status for x in check_targets(busy, c, None)}["latency"] == "unverifiable"
    busy.latency_ms = {"p50": 30.0, "p50_low": 29.0, "p50_high": 31.0}  # 29 / 2 = 14.5 ms: a real miss
    assert {x.name: x.status for x in check_targets(busy, c, None)}["latency"] == "missed"


def test_the_anchor_is_a_candidate_and_wins_unless_the_tuned_plan_clears_the_noise_band(cfg):
    from edgedeploy.plan import DeploymentPlan

    c = cfg()
    anchor_plan = DeploymentPlan(engine="openvino", precision="fp32", model="x", untuned=True, shape=(1, 3))

    def anchor(lat, band):
        return Measurement(plan=anchor_plan, ok=True, latency_ms={"p50": lat, "p50_low": lat - band, "p50_high": lat + band},
                           memory_bytes=30e6, power_w=1.0, power_measured=True, throughput=1000 / lat)

    tuned = _m(1, 2.0, power=1, measured=True, band=0.2)
    assert choose([tuned, anchor(2.3, 0.2)], c, None)[0].plan.untuned  # 1.8-2.2 vs 2.1-2.5: overlap, the anchor
    assert choose([tuned, anchor(3.0, 0.2)], c, None)[0] is tuned  # 2.2 < 2.8: clears the band
    assert clears_noise((1.8, 2.2), (2.8, 3.2)) and not clears_noise((1.8, 2.2), (2.1, 2.5))


def test_the_search_follows_the_cpu_isa(cfg):
    def with_int8(model, engine, precision):
        return Variant(model=str(model.path), runtime_precision="fp32") if precision == "int8" else produce(model, engine, precision)

    SPEED[("openvino", "int8")] = SPEED[("onnxruntime", "int8")] = 3.0  # runtime precision fp32 of an INT8 file
    calls = []
    r = tune(cfg(), measure=fake_measure(calls), produce=with_int8, cores=2, isa=AVX512_BF16)
    screened = {lbl for s, lbl in calls if s == "screen"}
    assert "openvino int8+bf16 t2 b1" in screened and "openvino bf16 t2 b1" in screened  # mixed INT8+BF16 with native BF16
    calls = []
    r = tune(cfg(), measure=fake_measure(calls), produce=with_int8, cores=2, isa=AVX2)
    pruned = {p.what: p.reason for p in r.pruned}
    assert "no native BF16" in pruned["openvino bf16"] and not any("+bf16" in lbl for _, lbl in calls)


def test_a_fixed_input_size_is_also_measured_compiled_static_and_kept_only_when_it_pays(cfg):
    """deployment.input_shape fixes a dynamic model's size: each expanded plan is measured a second time
    compiled for that shape (EngineOptions.input_shape); equal speed keeps the session that takes any size."""
    def measure_with(static_speedup):
        calls, base = [], fake_measure([])

        def measure(cands, stage):
            out = base(cands, stage)
            for m in out:
                calls.append((stage, m.plan.label))
                if m.plan.options.input_shape:
                    m.latency_ms = {k: v / static_speedup for k, v in m.latency_ms.items()}
                    m.throughput *= static_speedup
            return out
        return measure, calls

    measure, calls = measure_with(1.0)
    r = tune(cfg(), measure=measure, produce=produce, cores=2, isa=AVX512_BF16)
    statics = [lbl for s, lbl in calls if lbl.endswith(" static")]
    assert statics and all(s == "expand" or s == "repeat" for s, lbl in calls if lbl.endswith(" static"))
    assert r.chosen.plan.options.input_shape is None  # a tie: the plan that takes any size
    measure, _ = measure_with(1.5)
    r = tune(cfg(), measure=measure, produce=produce, cores=2, isa=AVX512_BF16)
    assert r.chosen.plan.options.input_shape == r.chosen.plan.shape == (1, 3, 32, 32)
    assert r.chosen.plan.label.endswith(" static")


def test_a_static_plan_keeps_its_compiled_shape_in_step_with_its_batch():
    from edgedeploy.plan import DeploymentPlan

    p = DeploymentPlan(engine="openvino", precision="fp32", model="m.onnx", shape=(1, 3, 32, 32),
                       options={"threads": 1, "input_shape": (1, 3, 32, 32)})
    q = p.with_batch(4)
    assert q.shape == q.options.input_shape == (4, 3, 32, 32)
    assert DeploymentPlan(engine="openvino", precision="fp32", model="m.onnx").with_batch(2).options.input_shape is None
