"""The exit-code contract, through the real entry point: ``edgedeploy.cli.main`` and the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgedeploy
from edgedeploy.cli import main

SRC = str(Path(edgedeploy.__file__).resolve().parents[1])


def script() -> list[str]:
    """The installed console script (the one users type), running this checkout's source."""
    found = Path(sys.executable).with_name("edgedeploy")
    if found.exists():
        return [str(found)]
    which = shutil.which("edgedeploy")
    if which:
        return [which]
    pytest.skip("the edgedeploy console script is not installed (pip install -e .)")


def run_script(*argv: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": SRC, "EDGEDEPLOY_LOG_DIR": str(tmp_path / "logs"), **env}
    return subprocess.run([*script(), *argv], capture_output=True, text=True, timeout=120, env=environ,
                          cwd=tmp_path)


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    (["info"], "Missing argument"),
    (["run", "M", "--bogus"], "No such option: --bogus"),
    (["run", "M", "--runs", "0"], "'--runs'"),
    (["bench", "M", "--batch", "0"], "'--batch'"),
    (["devices", "--recommend"], "requires an argument"),
    (["zoo", "fetch"], "Missing argument"),
])
def test_usage_errors_are_one_line_exit_2_through_the_installed_script(tmp_path, argv, expected):
    r = run_script(*argv, tmp_path=tmp_path)
    line = one_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert line.startswith("edgedeploy: error: ") and expected in line
    assert "usage: edgedeploy " in line and "--help" in line
    assert r.stdout == ""


def test_serve_port_out_of_range_is_one_line_exit_2_through_the_installed_script(tmp_path):
    r = run_script("serve", "repo", "--port", "70000", tmp_path=tmp_path)
    assert r.returncode == 2 and "--port 70000" in one_line(r.stderr) and r.stdout == ""


def test_no_arguments_prints_the_help_and_exits_2(tmp_path):
    r = run_script(tmp_path=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    shown = r.stdout + r.stderr
    assert "Usage: edgedeploy" in shown and "Exit codes" in shown


def test_root_help_documents_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes" in out and "internal error" in out


def test_an_internal_error_is_one_line_exit_3_with_the_traceback_in_a_log(tmp_path, monkeypatch, capsys):
    from edgedeploy import engines

    def broken(name):
        raise RuntimeError("engine table is broken")

    monkeypatch.setenv("EDGEDEPLOY_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(engines, "available", broken)
    code = main(["engines"])
    out, err = capsys.readouterr()
    line = one_line(err)
    assert code == 3 and out == ""
    assert "internal error: RuntimeError: engine table is broken" in line and "please report it" in line
    log = Path(line.rsplit("details in ", 1)[1])
    assert log.parent == tmp_path / "logs" and "Traceback" in log.read_text()
    assert 'argv: ["engines"]' in log.read_text()


def test_an_engine_crash_reported_as_internal_error_also_names_its_log(tmp_path, monkeypatch, capsys):
    from edgedeploy import engines
    from edgedeploy.errors import InternalError

    def crashed(name):
        raise InternalError("onnxruntime aborted while loading")

    monkeypatch.setenv("EDGEDEPLOY_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(engines, "available", crashed)
    assert main(["engines", "--json"]) == 3
    out, err = capsys.readouterr()
    assert "please report it; details in" in one_line(err)
    doc = json.loads(out)
    assert doc["exit_code"] == 3 and doc["error"]["kind"] == "internal"


def test_a_usage_error_under_json_still_writes_one_json_document(tmp_path):
    r = run_script("run", str(tmp_path / "missing.onnx"), "--json", tmp_path=tmp_path)
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and doc["error"]["kind"] == "usage" and "not found" in doc["error"]["message"]
    assert "not found" in one_line(r.stderr)


def test_typer_is_pinned_exactly_because_its_click_is_vendored():
    pyproject = (Path(SRC).parent / "pyproject.toml").read_text()
    from importlib.metadata import version

    assert f'"typer=={version("typer")}"' in pyproject
