"""Run issue 12's whole bad-input list through the installed `edgedeploy` script; report each exit code.

    python benchmarks/bad_inputs.py [--log FILE]

Each case runs in its own process (a segfault would show as exit -11). The combined stdout and
stderr of every run go to the log (default: benchmarks/results/bad_inputs.log); the last line is
the number of cases whose exit code or message differs from the contract, and the number of
"Traceback" lines in the log (both must be 0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.cli.bad_inputs import CASES, argv_of, make_files  # noqa: E402
from tests.conftest import build_tiny_onnx  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=ROOT / "benchmarks" / "results" / "bad_inputs.log")
    args = ap.parse_args()
    script = Path(sys.executable).with_name("edgedeploy")
    exe = [str(script)] if script.exists() else [shutil.which("edgedeploy") or "edgedeploy"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    wrong = 0
    with tempfile.TemporaryDirectory(prefix="edgedeploy-badinput-") as tmp, open(args.log, "w") as log:
        tmp = Path(tmp)
        env["EDGEDEPLOY_LOG_DIR"] = str(tmp / "crash-logs")
        files = make_files(tmp, build_tiny_onnx(tmp / "tiny.onnx"))
        for case in CASES:
            argv = argv_of(case, files)
            r = subprocess.run([*exe, *argv], capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            ok = r.returncode == case.exit_code and any(case.says in line for line in lines[-1:])
            wrong += not ok
            print(f"{'ok  ' if ok else 'DIFF'} exit {r.returncode:>3} (want {case.exit_code}) {case.id}: "
                  f"{lines[-1] if lines else '(nothing on stderr)'}")
            log.write(f"$ edgedeploy {' '.join(argv)}\n{r.stdout}{r.stderr}exit {r.returncode}\n\n")
    tracebacks = args.log.read_text().count("Traceback")
    print(f"{len(CASES)} cases, {wrong} differ from the contract; Traceback lines in {args.log}: {tracebacks}")
    return 1 if wrong or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
