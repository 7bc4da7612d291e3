"""The seed's YAML accepted as written; every mistake one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgedeploy.deploy import config
from edgedeploy.errors import UserError

EXAMPLE = Path(__file__).parents[2] / "examples" / "deployment_config.yaml"


def test_example_is_the_seed_yaml_plus_a_model():
    cfg = config.load(EXAMPLE, check_model=False)
    d, p = cfg.deployment, cfg.performance
    assert (d.hardware, d.precision, d.batch_size, d.thread_num) == ("jetson-nano", ["int8"], [1], [4])
    assert d.memory_optimization and d.operator_fusion
    assert (p.target_latency, p.max_memory, p.power_consumption) == (10.0, 512_000_000, 5.0)
    assert cfg.monitoring.metrics == ["latency", "memory", "throughput"] and cfg.monitoring.log_level == "info"
    assert cfg.model == "pplcnet-orientation"


def test_knobs_are_limits(tmp_path, tiny_onnx, seed_yaml):
    cfg = config.load(seed_yaml(tmp_path / "c.yaml", model=tiny_onnx))
    assert cfg.deployment.precisions() == ["int8", "bf16", "fp16", "fp32"]
    assert cfg.deployment.threads(2) == [1, 2] and cfg.deployment.threads(8) == [1, 2, 4]
    assert cfg.deployment.batches() == [1]


@pytest.mark.parametrize("edit, message", [
    (("thread_num:", "thred_num:"), "line 8: deployment.thred_num: unknown key (did you mean 'thread_num'?)"),
    (("target_latency: 10ms", "target_latency: 10"), "performance.target_latency: 10 has no unit"),
    (("max_memory: 512MB", "max_memory: 512 parsecs"), "max_memory: unit 'parsecs'"),
    (('hardware: "jetson-nano"', 'hardware: "jetson-nanoo"'), "unknown hardware 'jetson-nanoo' (did you mean 'jetson-nano'?); known: jetson-nano, jetson-orin-nano"),
    (("batch_size: 1", "batch_size: 0"), "deployment.batch_size: 0 is impossible"),
    (('precision: "int8"', 'precision: "int7"'), "'int7' is not one of int8, bf16, fp16, fp32"),
    (("power_consumption: 5W", "power_consumption: 2W"), "below jetson-nano's lowest power mode (5 W"),
    (("max_memory: 512MB", "max_memory: 8GB"), "exceeds jetson-nano's 3.7 GiB"),
    (('log_level: "info"', 'log_level: "loud"'), "monitoring.log_level"),
    (('metrics: ["latency"', 'metrics: ["latncy"'), "did you mean 'latency'"),
])
def test_mistakes_are_one_line(tmp_path, tiny_onnx, edit, message, seed_yaml):
    path = seed_yaml(tmp_path / "c.yaml", model=tiny_onnx)
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(UserError) as err:
        config.load(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_model_file_says_which_line(tmp_path, seed_yaml):
    with pytest.raises(UserError, match=r"line 1: model: model '.*no-such.onnx' not found"):
        config.load(seed_yaml(tmp_path / "c.yaml", model="no-such.onnx"))


def test_model_path_is_relative_to_the_yaml(tmp_path, tiny_onnx, seed_yaml):
    (tmp_path / "m.onnx").write_bytes(Path(tiny_onnx).read_bytes())
    cfg = config.load(seed_yaml(tmp_path / "c.yaml", model="m.onnx"))
    assert cfg.model == str((tmp_path / "m.onnx").resolve())


def test_extra_sections(tmp_path, tiny_onnx, seed_yaml):
    extra = "evaluation:\n  max_accuracy_drop: 0.5%\nsearch:\n  time_budget: 0.5s\n"
    cfg = config.load(seed_yaml(tmp_path / "c.yaml", model=tiny_onnx, extra=extra))
    assert cfg.evaluation.max_accuracy_drop == pytest.approx(0.005) and cfg.search.time_budget == 500.0
