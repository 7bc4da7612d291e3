"""The rollout plan: every bad input is one line naming the key, with a suggestion where one fits."""

from __future__ import annotations

import pytest

from edgedeploy.cli import main
from edgedeploy.errors import UserError
from edgedeploy.fleet.rollouts import create_rollout, signing_key
from edgedeploy.fleet.plan import parse_plan
from edgedeploy.fleet.store import Store
from tests.fleet.conftest import tiny_model, write_plan

BASE = dict(name="r1", model="tiny", version=2, artifact="m.onnx", stages=[{"devices": 1}, {"percent": 100}])


@pytest.mark.parametrize("change, expected", [
    ({"stagse": []}, "unknown key 'stagse' (did you mean 'stages'?)"),
    ({"stages": [{"devices": 1}, {"percent": 150}]}, "stages[2]: percent 150 is outside (0, 100]"),
    ({"stages": [{"percnt": 10}]}, "stage 1: unknown key 'percnt' (did you mean 'percent'?)"),
    ({"gates": {"p99": 20}}, "gate on unknown metric 'p99' (did you mean 'p99_ms'?)"),
    ({"gates": {"p99_ms": "20 parsecs"}}, "gates.p99_ms"),
    ({"thresholds": {"sucess": "90%"}}, "thresholds: unknown key 'sucess' (did you mean 'success'?)"),
    ({"stages": [{"percent": 50}, {"percent": 25}]}, "below the previous stage's 50"),
    ({"on_failure": "panic"}, "on_failure"),
    ({"stages": [{"devices": 1, "ab": {"min_sample": 5}}]}, "stage 1: ab: unknown key 'min_sample' (did you mean 'min_samples'?)"),
])
def test_bad_plan_is_one_clear_line(change, expected):
    with pytest.raises(UserError) as err:
        parse_plan({**BASE, **change})
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_good_plan_parses_units():
    plan = parse_plan({**BASE, "gates": {"p99_ms": "0.05s", "rss_mb": "512MiB", "golden_max_diff": 1e-3},
                       "soak": "2s", "thresholds": {"success": "90%", "errors": 2}})
    assert plan.gates == {"p99_ms": 50.0, "rss_mb": 512.0, "golden_max_diff": 1e-3}
    assert plan.soak_s == 2.0 and plan.thresholds.success == 90.0
    assert [s.reach(5) for s in plan.stages] == [1, 5]


def _store_with_devices(tmp_path, *groups) -> Store:
    store = Store(tmp_path / "ctl" / "fleet.db")
    for i, g in enumerate(groups):
        store.put_device({"device": f"d{i}", "group": g, "labels": {}, "hardware": {"name": "x86_64", "cpu": "2 cores"}})
    return store


def test_selector_matching_nothing_is_refused(tmp_path):
    store = _store_with_devices(tmp_path, "north", "north")
    tiny_model(tmp_path / "m.onnx")
    plan = write_plan(tmp_path / "p.yaml", **BASE, target={"group": "south"})
    with pytest.raises(UserError, match=r"target \{'group': 'south'\} matches none of the 2 devices seen \(d0, d1\)"):
        create_rollout(store, plan, state_dir=tmp_path / "ctl", key=signing_key(tmp_path / "ctl"))


def test_a_published_version_cannot_change(tmp_path):
    store = _store_with_devices(tmp_path, "default")
    tiny_model(tmp_path / "m.onnx")
    create_rollout(store, write_plan(tmp_path / "p.yaml", **BASE), state_dir=tmp_path / "ctl", key=signing_key(tmp_path / "ctl"))
    tiny_model(tmp_path / "m.onnx", bias=1.0)
    with pytest.raises(UserError, match="already published with other content"):
        create_rollout(store, write_plan(tmp_path / "p.yaml", **{**BASE, "name": "r2"}), state_dir=tmp_path / "ctl",
                       key=signing_key(tmp_path / "ctl"))


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    _store_with_devices(tmp_path, "default").close()
    plan = write_plan(tmp_path / "p.yaml", **{**BASE, "stages": [{"percent": 120}]})
    assert main(["fleet", "rollout", "create", str(plan), "--dir", str(tmp_path / "ctl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgedeploy: error:") and "percent 120 is outside (0, 100]" in err and "\n" not in err
    assert main(["fleet", "rollout", "status", "nope", "--dir", str(tmp_path / "ctl")]) == 2
    assert "no rollout 'nope'" in capsys.readouterr().err
