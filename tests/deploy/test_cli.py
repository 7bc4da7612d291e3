"""`deploy`, `doctor`, `deployment verify|run` through edgedeploy.cli.main, on the tiny model with the real harness."""

from __future__ import annotations

import json
import textwrap

import pytest


@pytest.fixture
def app(edgedeploy_cli):
    return edgedeploy_cli


def tiny_yaml(path, model, latency):
    path.write_text(textwrap.dedent(f"""\
        model: {model}
        deployment:
          hardware: local
          precision: fp32
          thread_num: 1
          engines: [onnxruntime]
          input_shape: 32x32
        performance:
          target_latency: {latency}
          max_memory: 512MB
        monitoring:
          enable: true
          metrics: [latency, memory]
        search:
          runs: 5
          time_budget: 0.5s
        """))
    return path


def test_deploy_meets_targets_writes_a_verified_directory_and_runs_it(app, tiny_onnx, tmp_path):
    out = tmp_path / "dep"
    r = app(["deploy", str(tiny_yaml(tmp_path / "c.yaml", tiny_onnx, "1s")), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["met"] and {c["name"] for c in data["result"]["checks"]} == {"latency", "memory"}
    assert all(c["met"] and c["how"].startswith("measured") for c in data["result"]["checks"])
    assert (out / "manifest.json").exists() and (out / "model.onnx").exists()
    r = app(["deployment", "run", str(out), "--runs", "5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["inferences"] == 5
    (out / "deployment.yaml").write_text((out / "deployment.yaml").read_text() + "\n# edited\n")
    r = app(["deployment", "run", str(out)])
    assert r.exit_code == 2 and "deployment.yaml does not match manifest.json" in r.stderr


def test_unmet_target_exits_1_with_closest_and_advice(app, tiny_onnx, tmp_path):
    r = app(["deploy", str(tiny_yaml(tmp_path / "c.yaml", tiny_onnx, "1us")), "-o",
                                 str(tmp_path / "dep")])
    assert r.exit_code == 1, r.output
    assert "targets not met on this machine (latency" in r.stderr
    assert "closest (not every target met): onnxruntime fp32, 1 threads, batch 1" in r.stdout
    assert "[PROBLEM] slow: latency target" in r.stdout and "advice:" in r.stdout
    assert not (tmp_path / "dep").exists()


def test_unknown_hardware_lists_the_known(app, tiny_onnx, tmp_path):
    path = tiny_yaml(tmp_path / "c.yaml", tiny_onnx, "1s")
    path.write_text(path.read_text().replace("hardware: local", "hardware: jetson-tx9"))
    r = app(["deploy", str(path)])
    assert r.exit_code == 2 and "known: jetson-nano, jetson-orin-nano" in r.stderr
