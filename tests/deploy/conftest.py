"""Helpers for the deployment tests: seed YAML text, and fake measurements for the tuner."""

from __future__ import annotations

import textwrap

import pytest

SEED_YAML = textwrap.dedent("""\
    model: {model}
    deployment:
      hardware: "{hardware}"
      precision: "{precision}"
      batch_size: 1
      memory_optimization: true
      operator_fusion: true
      thread_num: 4
    performance:
      target_latency: {latency}
      max_memory: 512MB
      power_consumption: 5W
    monitoring:
      enable: true
      metrics: ["latency", "memory", "throughput"]
      log_level: "info"
    """)


def write_seed_yaml(path, *, model, hardware="jetson-nano", precision="int8", latency="10ms", extra=""):
    path.write_text(SEED_YAML.format(model=model, hardware=hardware, precision=precision, latency=latency) + extra)
    return path


@pytest.fixture
def seed_yaml():
    """Write the seed's YAML (with a model line) to a path: ``seed_yaml(path, model=..., latency="10ms")``."""
    return write_seed_yaml
