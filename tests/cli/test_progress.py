"""Progress off a terminal: the real CLI with stderr piped prints one line per phase (and per 10% of a
counted one) for bench, deploy and optimize, and a ``still ...`` line after 10 s of silence."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.progress import Progress

import edgedeploy
from edgedeploy.cli import output
from tests.deploy.test_cli import tiny_yaml

SRC = str(Path(edgedeploy.__file__).resolve().parents[1])


def _cli(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("edgedeploy")
    if not script.exists():
        pytest.skip("the edgedeploy console script is not installed")
    env = {**os.environ, "PYTHONPATH": SRC, "EDGEDEPLOY_LOG_DIR": str(tmp_path / "logs")}
    # stderr is a pipe, not a terminal: no bar can be drawn, so phase lines must appear instead
    return subprocess.run([str(script), *argv], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_bench_and_deploy_print_phase_lines_when_stderr_is_a_pipe(tiny_onnx, tmp_path):
    r = _cli("bench", str(tiny_onnx), "--engine", "onnxruntime", "--no-anchors", "--shape", "32x32",
             "--shape", "48x48", "--runs", "3", "--time-budget", "0.2", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("bench: ")]
    assert len(lines) == 3 and "32x32" in lines[0] and "(0/2, 0%)" in lines[0], r.stderr
    assert "48x48" in lines[1] and lines[2] == "bench: done (2/2, 100%)", r.stderr

    r = _cli("deploy", str(tiny_yaml(tmp_path / "c.yaml", tiny_onnx, "1s")), "-o", str(tmp_path / "dep"),
             tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("deploy: ")]
    assert lines and any("screening" in ln for ln in lines), r.stderr

    r = _cli("deploy", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "dep2"), "--json", tmp_path=tmp_path)
    assert r.returncode == 0 and not [ln for ln in r.stderr.splitlines() if ln.startswith("deploy: ")]  # --json


def test_one_line_per_phase_and_per_tenth_and_a_heartbeat_in_silence(monkeypatch):
    monkeypatch.setattr(output, "HEARTBEAT_S", 0.2)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with Progress(disable=True) as bar:
        say = output.Phases("prune", bar, lines=True)
        try:
            say("distillation", 0, 200)
            for i in range(1, 201):
                say("distillation", i, 200)
            say("exporting")
            say("exporting")  # the same phase again: no new line
            time.sleep(0.7)
        finally:
            say.close()
    got = sys.stderr.getvalue().splitlines()
    tenths = [ln for ln in got if ln.startswith("prune: distillation")]
    assert len(tenths) == 11 and tenths[-1] == "prune: distillation (200/200, 100%)", got
    assert got[11] == "prune: exporting" and got[12].startswith("prune: still exporting ("), got
