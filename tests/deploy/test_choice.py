"""``engine: auto``: the measured choice, its noise-band rule and its cache per machine and model digest."""

from __future__ import annotations

import json

import pytest

from edgedeploy.deploy import choice
from edgedeploy.engines import Timing
from edgedeploy.plan import DeploymentPlan
from tests.conftest import build_tiny_onnx

AMD = {"cpu": "AMD EPYC", "isa": ["avx2", "avx512_bf16", "avx512f"], "engines": {"onnxruntime": "1", "openvino": "1"}}
XEON = {"cpu": "Intel Xeon", "isa": ["amx_bf16", "amx_int8", "avx2", "avx512f"], "engines": AMD["engines"]}
OLD = {"cpu": "old", "isa": ["avx2"], "engines": AMD["engines"]}
QUICK = dict(rounds=1, runs=3, budget_s=0.05)
SHAPE = (1, 3, 16, 16)


@pytest.fixture(autouse=True)
def _steady_load(monkeypatch):
    """The machine's load as the choice sees it, held steady (a test sets its own where it matters)."""
    monkeypatch.setattr(choice, "load_per_core", lambda: 0.2)


def test_choice_is_measured_once_then_cached_per_machine_and_model_digest(tmp_path):
    model = build_tiny_onnx(tmp_path / "m.onnx")
    cache = tmp_path / "choices"
    first = choice.choose(model, SHAPE, cache=cache, machine=AMD, **QUICK)
    assert not first.cached and first.path.is_file()
    stored = json.loads(first.path.read_text())  # written whole (atomic): the plan and every candidate's figures
    assert stored["key"]["machine"] == AMD and set(stored["measured"]) == set(first.measured)
    assert all("p50" in v and v["p50_low"] <= v["p50"] <= v["p50_high"] for v in first.measured.values())

    again = choice.choose(model, SHAPE, cache=cache, machine=AMD, **QUICK)
    assert again.cached and again.plan == first.plan and again.measured == first.measured

    other = choice.choose(model, SHAPE, cache=cache, machine=XEON, **QUICK)  # another CPU: measured afresh
    assert not other.cached and other.path != first.path
    assert choice.choose(model, SHAPE, cache=cache, machine=AMD, **QUICK).cached  # the first machine's stays

    build_tiny_onnx(model, opset=13)  # the same file name, other bytes: another digest
    changed = choice.choose(model, SHAPE, cache=cache, machine=AMD, **QUICK)
    assert not changed.cached
    assert changed.key["models"]["m.onnx"] != first.key["models"]["m.onnx"]
    assert choice.choose(model, (1, 3, 32, 32), cache=cache, machine=AMD, **QUICK).cached is False  # another shape


def test_a_damaged_cache_file_is_measured_again(tmp_path):
    model = build_tiny_onnx(tmp_path / "m.onnx")
    first = choice.choose(model, SHAPE, cache=tmp_path, machine=AMD, **QUICK)
    first.path.write_text("{not json")
    assert not choice.choose(model, SHAPE, cache=tmp_path, machine=AMD, **QUICK).cached
    assert json.loads(first.path.read_text())["plan"]


def test_candidates_follow_the_cpu_and_the_int8_copy(tmp_path):
    model = build_tiny_onnx(tmp_path / "m.onnx")
    int8 = build_tiny_onnx(tmp_path / "m.int8.onnx")

    def labels(**kw):
        return [(p.engine.value, p.precision.value) for p in choice.candidates(model, threads=1, **kw)]

    assert labels(machine=OLD) == [("onnxruntime", "fp32"), ("openvino", "fp32")]
    assert ("openvino", "bf16") in labels(machine=AMD) and ("openvino", "bf16") in labels(machine=XEON)
    with_int8 = labels(machine=AMD, int8=int8)
    assert ("openvino", "int8") in with_int8 and ("onnxruntime", "int8") in with_int8
    assert labels(machine=AMD, int8=int8, reduced_precision=False) == labels(machine=OLD)
    q = next(p for p in choice.candidates(model, threads=1, int8=int8, machine=AMD) if p.precision == "int8")
    assert q.model.path == str(int8) and q.model.source == str(model)


def _timing(center: float, spread: float) -> Timing:
    return Timing(tuple(center + spread * ((i % 21) - 10) / 10 for i in range(60)), 1.0)


@pytest.mark.parametrize(("int8_ms", "chosen"), [(9.9, "fp32"), (5.0, "int8")])
def test_a_lower_precision_wins_only_beyond_the_noise_band(tmp_path, int8_ms, chosen):
    fp32 = DeploymentPlan(engine="openvino", precision="fp32", model="m.onnx", options={"threads": 1})
    int8 = DeploymentPlan(engine="openvino", precision="int8", model="m.int8.onnx", options={"threads": 1})
    plan, tied, why = choice.decide([fp32, int8], {fp32.label: _timing(10.0, 1.0), int8.label: _timing(int8_ms, 1.0)})
    assert plan.precision == chosen
    assert (len(tied) == 2) == (chosen == "fp32")
    assert "noise band" in why


@pytest.mark.parametrize(("int8_ms", "chosen"), [(9.3, "fp32"), (8.5, "int8")])
def test_a_lower_precision_must_be_more_than_ten_percent_faster_even_when_both_are_steady(int8_ms, chosen):
    fp32 = DeploymentPlan(engine="openvino", precision="fp32", model="m.onnx", options={"threads": 1})
    int8 = DeploymentPlan(engine="openvino", precision="int8", model="m.int8.onnx", options={"threads": 1})
    plan, _, _ = choice.decide([fp32, int8], {fp32.label: _timing(10.0, 0.01), int8.label: _timing(int8_ms, 0.01)})
    assert plan.precision == chosen


def test_no_runnable_candidate_is_one_clear_error():
    fp32 = DeploymentPlan(engine="onnxruntime", precision="fp32", model="m.onnx")
    with pytest.raises(Exception, match="no candidate engine could run"):
        choice.decide([fp32], {fp32.label: "onnxruntime could not load m.onnx"})


def test_a_choice_made_on_a_busy_machine_is_measured_again_once_it_is_quiet(tmp_path, monkeypatch):
    model = build_tiny_onnx(tmp_path / "m.onnx")
    monkeypatch.setattr(choice, "load_per_core", lambda: 6.0)  # other processes hold every core
    busy = choice.choose(model, SHAPE, cache=tmp_path, machine=AMD, **QUICK)
    assert busy.load_per_core == 6.0 and "load 6.0/core" in busy.summary()
    assert choice.choose(model, SHAPE, cache=tmp_path, machine=AMD, **QUICK).cached  # still busy: kept
    monkeypatch.setattr(choice, "load_per_core", lambda: 0.1)
    quiet = choice.choose(model, SHAPE, cache=tmp_path, machine=AMD, **QUICK)
    assert not quiet.cached and quiet.load_per_core == 0.1
    assert choice.choose(model, SHAPE, cache=tmp_path, machine=AMD, **QUICK).cached
