"""A benchmark row carries every engine option of a plan, across the process boundary."""

from __future__ import annotations

import dataclasses

from edgedeploy.benchmarking import BenchConfig, run_one
from edgedeploy.engines import EngineOptions
from edgedeploy.plan import DeploymentPlan


def test_a_row_carries_the_plans_options_whole_and_replace_keeps_its_columns():
    plan = DeploymentPlan(engine="onnxruntime", precision="fp32", model="m.onnx", batch=1, shape=(1, 3, 8, 8),
                          options=EngineOptions(threads=1, memory_optimization=True, graph_optimization=False))
    row = BenchConfig.from_plan(plan, runs=3)
    assert row.options == plan.options and row.threads == 1
    again = BenchConfig.from_dict(row.to_dict())
    assert again == row and again.options.memory_optimization and not again.options.graph_optimization
    two = dataclasses.replace(row, threads=2)
    assert two.threads == 2 and two.options.threads == 2 and two.options.memory_optimization
    anchor = dataclasses.replace(row, untuned=True)
    assert anchor.options == EngineOptions() and anchor.threads is None


def test_the_worker_opens_the_row_with_every_option(tiny_onnx):
    plan = DeploymentPlan(engine="onnxruntime", precision="fp32", model=str(tiny_onnx), batch=1, shape=(1, 3, 32, 32),
                          options=EngineOptions(threads=1, memory_optimization=True, graph_optimization=False))
    r = run_one(BenchConfig.from_plan(plan, runs=3, warmup=0, time_budget_s=None))
    assert r.ok, r.reason
    assert r.engine_settings["enable_cpu_mem_arena"] is False
    assert r.engine_settings["graph_optimization_level"].endswith("ORT_DISABLE_ALL")
    assert r.latency_ms["p50_low"] <= r.latency_ms["p50"] <= r.latency_ms["p50_high"]
