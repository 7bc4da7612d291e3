"""Issue 15's closing table: target x model x artefact x accuracy (how measured) x latency (how obtained).

Each pair runs the real CLI, as a user would: ``edgedeploy deploy <yaml> --out <tmp> --json`` with
``hardware: <target>``, ``precision: auto`` (every precision the target runs; INT8 is made for the target even where it does not pay on this x86 CPU) and the accuracy
budget below; the artefacts deploy built into the signed deployment are read from its JSON. Figures
keep the label deploy gave them: measured (this machine), emulated (qemu-aarch64, the same engine
version's ARM kernels), simulated (RKNN-Toolkit2's simulator), stand-in (ONNX Runtime running the
TensorRT artefact's ONNX here) or estimated (roofline of the target's profile). Latency is never
taken from emulation or a simulator.

    .venv/bin/python benchmarks/targets_table.py                               # every pair (~30-40 min on 2 cores)
    .venv/bin/python benchmarks/targets_table.py --only rk3588:picodet-layout  # one pair, merged into the JSON
    (several --only runs may go in parallel: each pair is merged into the JSON under a file lock)
    .venv/bin/python benchmarks/targets_table.py --render                      # the table from the JSON only

Writes benchmarks/results/targets.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from filelock import FileLock

from edgedeploy.targets.build import ARM_RULE

OUT = Path(__file__).parent / "results"
PAIRS = [("rk3588", "pplcnet-orientation"), ("rk3588", "picodet-layout"),
         ("jetson-orin-nano", "pplcnet-orientation"), ("jetson-orin-nano", "picodet-layout"),
         ("raspberry-pi-5", "pplcnet-orientation"), ("raspberry-pi-5", "picodet-layout")]
BUDGET = "1%"
LOCK = Path(tempfile.gettempdir()) / "edgedeploy-targets-table.lock"  # beside the JSON it would be committed
YAML = """model: {model}
deployment:
  hardware: "{target}"
  precision: "auto"
  batch_size: 1
  thread_num: 2
performance:
  target_latency: 5000ms
  max_memory: 4GB
evaluation:
  max_accuracy_drop: {budget}
"""


def deploy(target: str, model: str) -> dict:
    """One pair through ``edgedeploy deploy --json``; its report plus the wall time and exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "deploy.yaml"
        cfg.write_text(YAML.format(model=model, target=target, budget=BUDGET))
        cli = Path(sys.executable).with_name("edgedeploy")
        t0 = time.monotonic()
        proc = subprocess.run([str(cli), "deploy", str(cfg), "--out", str(Path(tmp) / "dep"), "--json"],
                              capture_output=True, text=True)
        wall = time.monotonic() - t0
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {"error": (proc.stderr or proc.stdout)[-2000:]}
    return {"target": target, "model": model, "exit_code": proc.returncode, "wall_s": round(wall, 1),
            "load_avg": os.getloadavg()[0], "report": report}


def _fig(f: dict | None, fmt: str) -> str:
    if not f or f.get("value") is None:
        return "—"
    n = re.search(r" on (\d+) samples", f.get("detail", ""))
    return f"{format(f['value'], fmt)} ({f['how']}{f', {n[1]} samples' if n else ''})"


def rows(run: dict) -> list[str]:
    arts = run["report"].get("target_artifacts") or []
    if not arts:
        why = run["report"].get("error", "no target artefacts in the report")
        why = why.get("message", str(why)) if isinstance(why, dict) else str(why)
        return [f"| {run['target']} | {run['model']} | — | — | — | — | exit {run['exit_code']}: {why[:200]} |"]
    out = []
    for a in arts:
        shipped = "primary" if a["primary"] else ("shipped" if a["files"] else "**not shipped**")
        acc = _fig(a.get("accuracy"), ".3f")
        if a.get("reference") and a["reference"].get("value") is not None and acc != "—":
            acc += f" vs FP32 {a['reference']['value']:.3f}"
        lat = _fig(a.get("latency_ms"), ".1f")
        key = [n for n in a["notes"] if n.startswith(("not shipped", "fallback", "INT8 over budget", "not built",
                                                      "not verified", "hybrid", "also tried"))]
        note = "; ".join(n[:160] for n in key)
        out.append(f"| {a['target']} | {run['model']} | {a['engine']} {a['precision']} ({a['unit']}), {shipped} "
                   f"| {acc} | {_fig(a.get('agreement'), '.3g')} | {lat} | {note} |")
    return out


def render(runs: dict) -> str:
    lines = ["# Edge targets: what each box runs, checked as far as this machine can",
             "",
             f"`benchmarks/targets_table.py`: each pair is `edgedeploy deploy` (real CLI, `precision: auto`, "
             f"`max_accuracy_drop: {BUDGET}`) on a shared 2-core x86-64 machine. accuracy: the model's task metric "
             "(PP-LCNet top-1, PicoDet hmean) on generated samples, and how it was obtained; agreement: largest "
             "|output - FP32| on calibration inputs; latency: estimated from the target's roofline profile "
             "(never from emulation or a simulator). A *not shipped* row was built and measured, then left out "
             "of the deployment: over the accuracy budget while another artefact of the same unit is within it.", "",
             f"ARM CPU rule ({ARM_RULE}); accelerators: the least precise artefact within the budget.", "",
             "| target | model | artefact | accuracy (how) | agreement (how) | latency ms (how) | notes |",
             "|---|---|---|---|---|---|---|"]
    for key in sorted(runs):
        lines += rows(runs[key])
    lines += ["", "| target | model | deploy exit | wall s | load avg at end |", "|---|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['model']} | {r['exit_code']} | {r['wall_s']} | {r['load_avg']:.1f} |"
              for r in (runs[k] for k in sorted(runs))]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="target:model pairs to (re)run")
    ap.add_argument("--render", action="store_true", help="only rewrite the table from the JSON")
    args = ap.parse_args()
    path = OUT / "targets.json"
    pairs = [] if args.render else ([tuple(p.split(":", 1)) for p in args.only] if args.only else PAIRS)
    for target, model in pairs:
        print(f"deploy {model} for {target} ...", file=sys.stderr, flush=True)
        run = deploy(target, model)
        with FileLock(LOCK):  # after each pair, merged: a long run keeps what it has, runs can be parallel
            runs = json.loads(path.read_text()) if path.exists() else {}
            runs[f"{target}:{model}"] = run
            path.write_text(json.dumps(runs, indent=1) + "\n")
    with FileLock(LOCK):
        runs = json.loads(path.read_text()) if path.exists() else {}
        (OUT / "targets.md").write_text(render(runs))
    print((OUT / "targets.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
