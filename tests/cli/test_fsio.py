"""Nothing left behind: atomic writes, scratch directories, sweeping what a killed run left, umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import edgedeploy
from edgedeploy import fsio

SRC = str(Path(edgedeploy.__file__).resolve().parents[1])


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with fsio.atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with fsio.atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_outputs_follow_the_umask_not_mkstemps_0600(tmp_path, umask_027):
    with fsio.atomic_write(tmp_path / "f") as f:
        f.write(b"x")
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640
    d = fsio.make_scratch_dir("test", parent=tmp_path)
    fsio.match_umask(d)
    assert d.stat().st_mode & 0o777 == 0o750
    assert fsio.umask() == 0o027


def test_scratch_dir_is_removed_however_the_block_ends(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with fsio.scratch_dir("test", parent=tmp_path) as d:
            (d / "x").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    """The pid of a process that has exited (as a killed edgedeploy's would be)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_removes_a_dead_processs_leftovers_and_keeps_a_live_ones(tmp_path):
    stale = tmp_path / f"edgedeploy-opt-{dead_pid()}-abc"
    live = tmp_path / f"edgedeploy-tune-{os.getppid()}-abc"
    other = tmp_path / "someone-else"
    for d in (stale, live, other):
        d.mkdir()
        (d / "model.onnx.part").write_text("x")
    old = fsio.process_start_time() - 60
    for d in (stale, live, other):
        os.utime(d, (old, old))
    assert fsio.sweep_stale(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_a_terminated_command_leaves_no_part_file_or_scratch_dir(tmp_path):
    """SIGTERM during a write, in a process that entered edgedeploy.cli.main: cleaned up, exit 143."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        import typer
        from edgedeploy import cli, fsio

        def slow():
            with fsio.scratch_dir("test", parent={str(tmp_path)!r}) as d, fsio.atomic_write({str(tmp_path / 'out')!r}) as f:
                f.write(b"half")
                print("ready", flush=True)
                signal.pause()

        cli.app.command("slow-test")(slow)
        sys.exit(cli.main(["slow-test"]))
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": SRC})
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_sweep_partials_removes_a_killed_deploys_half_directory(tmp_path):
    half = tmp_path / f".dep.{dead_pid()}.xyz.part"
    mine = tmp_path / f".dep.{os.getpid()}.xyz.part"
    half.mkdir()
    mine.mkdir()
    assert fsio.sweep_partials(tmp_path, "dep") == [half] and mine.exists()


def test_a_successful_deploy_leaves_nothing_in_tmpdir_and_writes_with_the_umask(tmp_path, tiny_onnx):
    script = Path(sys.executable).with_name("edgedeploy")
    if not script.exists():
        pytest.skip("the edgedeploy console script is not installed")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    config = tmp_path / "d.yaml"
    config.write_text(f"model: {tiny_onnx}\ndeployment: {{hardware: local, precision: fp32, thread_num: 1, "
                      "engines: [onnxruntime], input_shape: 8x8}\nperformance: {target_latency: 1s}\n")
    env = {**os.environ, "PYTHONPATH": SRC, "TMPDIR": str(scratch), "EDGEDEPLOY_LOG_DIR": str(tmp_path / "logs")}
    r = subprocess.run(["sh", "-c", f"umask 022; exec {script} deploy {config} -o {tmp_path / 'dep'}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    # (a third-party library's telemetry leaves a `.ses` session file in $TMPDIR: not ours)
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []
    assert (tmp_path / "dep").stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "dep").iterdir())
    # beside the deployment: its Pareto plot and HTML report (every plan measured), nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.yaml", "dep", "dep.pareto.png", "dep.report.html", "tmp"]
    assert all((tmp_path / n).stat().st_mode & 0o777 == 0o644 for n in ("dep.pareto.png", "dep.report.html"))
