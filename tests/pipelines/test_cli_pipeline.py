"""`edgedeploy pipeline` and `edgedeploy gate-video`, through the same error handling as the CLI."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def cli():
    """The real entry point, edgedeploy.cli.main."""
    from edgedeploy import cli

    return cli.main


def test_pipeline_json(cli, tmp_path, video, capsys):
    config = tmp_path / "p.yaml"
    config.write_text("source: {url: x.mp4}\nstages: [{type: resize, scale: 0.5}]\n")
    assert cli(["pipeline", str(config), "--source", str(video), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["processed"] == 30 and out["source"]["frames"] == 30


def test_unknown_stage_is_one_line_and_nonzero(cli, tmp_path, video, capsys):
    config = tmp_path / "p.yaml"
    config.write_text(f"source: {{url: {video}}}\nstages: [{{type: container_tracker}}]\n")
    assert cli(["pipeline", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'container_track'" in err


def test_python_stage_needs_allow_python(cli, tmp_path, video, capsys):
    config = tmp_path / "p.yaml"
    config.write_text(f"source: {{url: {video}}}\nstages: [{{type: python, target: 'os:system'}}]\n")
    assert cli(["pipeline", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'os:system' is refused" in err
    target = "tests.pipelines.test_config:brightness"
    config.write_text(f"source: {{url: {video}}}\nstages: [{{type: python, target: '{target}'}}]\n")
    assert cli(["pipeline", str(config), "--allow-python", "tests.pipelines", "--json", "--max-frames", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["processed"] == 3


def test_missing_video_is_one_line(cli, tmp_path, capsys):
    config = tmp_path / "p.yaml"
    config.write_text("source: {url: nowhere.mp4}\nstages: [{type: resize}]\n")
    assert cli(["pipeline", str(config)]) == 2
    assert "video file nowhere.mp4 does not exist" in capsys.readouterr().err


def test_gate_video_command(cli, tmp_path, capsys):
    assert cli(["gate-video", str(tmp_path / "g.mp4"), "-n", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["containers"]) == 1 and (tmp_path / "g.json").is_file()
