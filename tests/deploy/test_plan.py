"""One DeploymentPlan from search to runtime, on the tiny model with the real harness and engines."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from edgedeploy.deploy import manifest
from edgedeploy.deploy.deployer import deploy
from edgedeploy.deploy.runtime import Deployment, deployed_plan
from edgedeploy.errors import UserError
from edgedeploy.plan import DeploymentPlan


def yaml_for(path, model, *, memopt=False, threads=1):
    path.write_text(textwrap.dedent(f"""\
        model: {model}
        deployment:
          hardware: local
          precision: fp32
          thread_num: {threads}
          engines: [onnxruntime]
          input_shape: 32x32
          memory_optimization: {str(memopt).lower()}
        performance:
          target_latency: 1s
          max_memory: 512MB
        evaluation:
          enable: false
        search:
          runs: 8
          screen_runs: 3
          time_budget: 0.3s
          repeats: 2
        """))
    return path


@pytest.mark.parametrize("memopt", [True, False])
def test_memory_optimization_is_measured_recorded_and_run(memopt, tiny_onnx, tmp_path):
    report = deploy(yaml_for(tmp_path / "c.yaml", tiny_onnx, memopt=memopt), tmp_path / "dep")
    assert report.met, report.result.checks
    # every configuration was measured with the setting: the measuring engine reports its arena off/on
    arena = [m.engine_settings["enable_cpu_mem_arena"] for m in report.result.measurements]
    assert arena and all(a is (not memopt) for a in arena)
    plan = deployed_plan(tmp_path / "dep")
    assert plan == report.result.plan.with_model(plan.model) and plan.options.memory_optimization is memopt
    assert plan.model.sha256 == manifest.read(tmp_path / "dep")["files"]["model.onnx"]["sha256"]
    with Deployment(tmp_path / "dep") as d:  # the running session honours it too
        assert d.session.settings["enable_cpu_mem_arena"] is (not memopt)
        assert d.run(d.session.example_feeds(plan.shape))
    # served: the deployment as a repository version opens as its plan says, not as a config default
    from edgedeploy.serving import MemoryManager, Repository

    shutil.copytree(tmp_path / "dep", tmp_path / "repo" / "tiny" / "1")
    (tmp_path / "repo" / "tiny" / "1" / "READY").touch()
    served = MemoryManager(Repository(tmp_path / "repo"))
    with served.use("tiny", 1) as entry, entry.pool.borrow() as session:
        assert session.settings["enable_cpu_mem_arena"] is (not memopt)
        assert session.run(session.example_feeds(plan.shape))
    served.unload("tiny", 1)
    if memopt:  # doctor judges the deployment as deploy did: the same plan, measurement and rules
        from edgedeploy.deploy.doctor import diagnose

        report = diagnose(str(tmp_path / "dep"), runs=8)
        assert report.problems == 0, report.to_dict()
        assert {f.title.split(":")[0] for f in report.findings if f.check == "targets"} == {"latency", "memory"}
        assert any(plan.label in f.title for f in report.findings)


def test_the_same_yaml_gives_the_same_choice_and_verdict(tiny_onnx, tmp_path):
    # two thread counts to choose between, and a power target this machine can only estimate
    path = yaml_for(tmp_path / "c.yaml", tiny_onnx, threads=2)
    path.write_text(path.read_text().replace("  max_memory: 512MB\n", "  max_memory: 512MB\n  power_consumption: 1W\n"))
    runs = [deploy(path, None) for _ in range(5)]
    choices = {(r.result.plan.label, r.met) for r in runs}
    assert len(choices) == 1, choices
    power = {c.status for r in runs for c in r.result.checks if c.name == "power"}
    if power == {"unverifiable"}:  # no sensor here: the estimate is reported, never decisive (policy warn)
        assert all(r.met for r in runs) and any("unverifiable here" in n for n in runs[0].notes)
        path.write_text(path.read_text().replace("  power_consumption: 1W\n", "  power_consumption: 1W\n  estimated: fail\n"))
        strict = deploy(path, None)
        assert not strict.met and strict.result.plan.label == runs[0].result.plan.label
        assert strict.verdict_error().exit_code == 1 and strict.verdict_error().figures["checks"]


def test_a_plan_round_trips_through_json_and_refuses_bad_data():
    plan = DeploymentPlan(engine="openvino", precision="bf16", model="m.onnx", batch=2, shape=(2, 3, 8, 8),
                          options={"threads": 2, "precision": "bf16", "memory_optimization": True})
    assert DeploymentPlan.from_dict(json.loads(plan.to_json())) == plan
    for bad in ([1, 2], {"engine": "openvino"}, {**plan.to_dict(), "model": {"files": "x"}},
                {**plan.to_dict(), "engine": "tensorflow"}, {**plan.to_dict(), "options": {"thread": 2}},
                {**plan.to_dict(), "shape": [3, 3, 8, 8]}, {**plan.to_dict(), "precision": "int2"}):
        with pytest.raises(UserError):
            DeploymentPlan.from_dict(bad)
    with pytest.raises(UserError, match="must agree"):
        DeploymentPlan(engine="openvino", precision="fp16", model="m.onnx", options={"precision": "bf16"})
