"""`edgedeploy serve` as a child process, started the way users start it (tests, benchmarks, tools)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def start_serve(repo: str | os.PathLike, *args: str, env: dict | None = None,
                timeout_s: float = 120) -> tuple[subprocess.Popen, dict]:
    """Run ``edgedeploy serve REPO --port 0 --grpc-port 0 --json --no-huge-pages ARGS`` and wait for its
    start-up summary (printed once both ports are bound). Returns (the process, the summary: url, port,
    grpc_port, ...). The caller terminates the process."""
    src = Path(__file__).resolve().parents[2]  # this checkout's src/, ahead of any installed copy
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), environ.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-c", "import sys; from edgedeploy.cli import main; sys.exit(main())", "serve", str(repo),
           "--port", "0", "--grpc-port", "0", "--json", "--no-huge-pages", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"edgedeploy serve exited ({proc.wait()}): {proc.stderr.read()[-3000:]}")
        lines.append(line)
        if line.startswith("}"):
            return proc, json.loads("".join(lines))
    proc.kill()
    raise RuntimeError(f"edgedeploy serve did not start within {timeout_s:g} s")


def stop_serve(proc: subprocess.Popen, timeout_s: float = 30) -> int:
    """SIGTERM (in-flight requests finish), then SIGKILL after ``timeout_s``; the exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
