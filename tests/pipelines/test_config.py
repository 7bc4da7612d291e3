"""Pipeline YAML: typed, unknown stage types and keys answered with a suggestion, examples valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedeploy.errors import UserError
from edgedeploy.pipelines.config import STAGES, build_pipeline, load_config, run_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_unknown_stage_type_suggests_the_closest(tmp_path, video):
    path = _write(tmp_path, f"source: {{url: {video}}}\nstages:\n  - type: detct\n")
    with pytest.raises(UserError, match=r"stages\[0\]: unknown stage type 'detct' \(did you mean 'detect'\?\)"):
        load_config(path)


def test_unknown_keys_and_wrong_types_are_reported(tmp_path, video):
    with pytest.raises(UserError, match=r"unknown key 'treads' \(did you mean 'threads'\?\)"):
        load_config(_write(tmp_path, f"source: {{url: {video}}}\nstages:\n  - {{type: detect, treads: 2}}\n"))
    with pytest.raises(UserError, match=r"unknown key 'limit_side' \(did you mean 'limit_side_len'\?\)"):
        load_config(_write(tmp_path, f"source: {{url: {video}}}\nstages:\n  - {{type: detect, limit_side: 320}}\n"))
    with pytest.raises(UserError, match=r"unknown key 'sinc' \(did you mean 'sinks'\?\)"):
        load_config(_write(tmp_path, f"source: {{url: {video}}}\nstages: [{{type: rule, field: a, op: '>', value: 1}}]\nsinc: []\n"))
    with pytest.raises(UserError, match="unknown key 'realtim'"):
        load_config(_write(tmp_path, f"source: {{url: {video}, realtim: true}}\nstages: [{{type: detect}}]\n"))
    with pytest.raises(UserError, match=r"sinks\[0\] \(mqtt\): port"):
        load_config(_write(tmp_path, f"source: {{url: {video}}}\nstages: [{{type: detect}}]\n"
                                     "sinks: [{type: mqtt, port: many}]\n"))
    with pytest.raises(UserError, match="unknown sink type 'jsnol'.*did you mean 'jsonl'"):
        load_config(_write(tmp_path, f"source: {{url: {video}}}\nstages: [{{type: detect}}]\nsinks: [{{type: jsnol}}]\n"))
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["gate.yaml", "ocr.yaml"])
def test_examples_are_valid(name, video):
    config = load_config(EXAMPLES / name, source=str(video))
    assert config.source.url == str(video) and config.stages
    assert all(entry["type"] in STAGES for entry in config.stages)
    models = [e for e in config.stages if e["type"] in ("detect", "cls", "recognize", "container_read")]
    assert models and all(e["engine"] == "auto" for e in models)  # the measured choice, not a hard-coded engine


def test_budget_shares_name_stages_and_are_checked_before_models_load(tmp_path, video):
    from edgedeploy.pipelines.config import build_pipeline

    text = f"source: {{url: {video}}}\nstages: [{{type: detect}}]\nbudget: {{fps: 10, shares: {{detct: 0.5}}}}\n"
    with pytest.raises(UserError, match="'detct', which is not a stage"):
        build_pipeline(load_config(_write(tmp_path, text)))
    pipe = build_pipeline(load_config(_write(tmp_path, text.replace("detct", "detect"))))
    assert pipe.fps == 10 and pipe.stages[0].det is None  # nothing loaded yet
    with pytest.raises(UserError, match="budget"):
        load_config(_write(tmp_path, text.replace("shares", "shraes")))


def test_a_pipeline_from_yaml_runs_with_a_python_stage(tmp_path, video):
    out = tmp_path / "frames.jsonl"
    path = _write(tmp_path, f"""
name: bright
source: {{url: {video}}}
stages:
  - {{type: resize, scale: 0.5}}
  - {{type: python, target: "tests.pipelines.test_config:brightness", name: bright}}
  - {{type: rule, field: value, op: ">", value: 0, action: keep}}
sinks:
  - {{type: jsonl, path: {out}}}
""")
    report = run_config(path, max_frames=10, allow_python=["tests.pipelines"])
    assert report.stats["processed"] == 10 and report.stopped_by == "max_frames=10"
    assert len(out.read_text().splitlines()) == 10
    pipe = build_pipeline(load_config(path, allow_python=["tests"]), allow_python=["tests"])
    assert [s.name for s in pipe.stages] == ["resize", "bright", "rule"]


@pytest.mark.parametrize("target, allow", [
    ("os:system", []),                                       # off by default
    ("os:system", ["tests.pipelines"]),                      # not the module allowed
    ("tests.pipelines.test_config:brightness", ["tests.pipe"]),  # a prefix of a name is not its parent
])
def test_python_stages_run_only_from_allowed_modules(tmp_path, video, target, allow):
    path = _write(tmp_path, f"source: {{url: {video}}}\nstages: [{{type: python, target: '{target}'}}]\n")
    with pytest.raises(UserError, match=f"target '{target}' is refused") as err:
        load_config(path, allow_python=allow)
    assert "\n" not in str(err.value)
    config = load_config(_write(tmp_path, f"source: {{url: {video}}}\nstages: [{{type: resize}}]\n"))
    config.stages.append({"type": "python", "target": target})  # built without load_config: still refused
    with pytest.raises(UserError, match="is refused"):
        build_pipeline(config, allow_python=allow)


def brightness(frame):
    """A user's stage for the test above: one event with the frame's mean brightness."""
    frame.events.append({"type": "brightness", "value": float(np.mean(frame.image))})
    return frame
