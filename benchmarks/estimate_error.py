"""How wrong is `edgedeploy estimate`? Measured on this machine and against SPEC.md's published latencies.

1. Calibrate: every zoo ONNX model at two input sizes where its input is dynamic, measured with the
   benchmark harness (ONNX Runtime FP32, 1 thread, fresh process each, median latency).
2. On this machine: estimate vs measured, in-sample and leave-one-model-out (the model being
   predicted was not in the fit) — the second is the honest figure.
3. Published: each SPEC.md latency beside the estimate for it (accelerators leave-one-out; CPUs
   with this machine's efficiency).

    .venv/bin/python benchmarks/estimate_error.py          # writes benchmarks/results/estimate.{md,json}
    .venv/bin/python benchmarks/estimate_error.py --out /tmp/est --runs 10   # elsewhere, quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from edgedeploy.hardware import estimate as est
from edgedeploy.hardware import published
from edgedeploy.fsio import atomic_write
from edgedeploy.hardware.profiles import local


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                    help="folder for estimate.md and estimate.json (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per calibration point (default: %(default)s)")
    ap.add_argument("--time-budget", type=float, default=4.0, help="seconds per calibration point (default: %(default)s)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    cal = est.calibrate(runs=args.runs, time_budget_s=args.time_budget,
                        progress=lambda i, n, what: print(f"[{i}/{n}] {what}", file=sys.stderr, flush=True))
    load1 = os.getloadavg()
    import numpy as np

    points = [est.Point(**p) for p in cal.points]
    coef = est._fit_time(points)
    cv = {(r["model"], tuple(r["shape"])): r["predicted_ms"] for r in cal.cv_errors}
    rows = []
    for p in points:
        ins = float(np.dot(coef, p.x()))
        lomo = cv.get((p.model, tuple(p.shape)))
        m_pred = cal.memory[0] * p.weight_bytes + cal.memory[1] * p.peak_activation_bytes + cal.memory[2]
        rows.append({"model": p.model, "shape": "x".join(map(str, p.shape)), "gflops": p.flops / 1e9,
                     "measured_ms": p.measured_ms, "in_sample_ms": ins, "loo_ms": lomo,
                     "in_sample_error": ins / p.measured_ms - 1, "loo_error": lomo / p.measured_ms - 1 if lomo else None,
                     "measured_memory_mib": (p.measured_memory_bytes or 0) / 2**20, "estimated_memory_mib": m_pred / 2**20,
                     "memory_error": m_pred / p.measured_memory_bytes - 1 if p.measured_memory_bytes else None})
    pub = published.check(cal)
    abs_loo = [abs(r["loo_error"]) for r in rows if r["loo_error"] is not None]
    abs_in = [abs(r["in_sample_error"]) for r in rows]
    abs_mem = [abs(r["memory_error"]) for r in rows if r["memory_error"] is not None]
    abs_pub = [abs(r["error"]) for r in pub if r["error"] is not None]
    summary = {"machine": local().name, "load_average_before": load0, "load_average_after": load1,
               "efficiency": cal.e, "bandwidth_efficiency": cal.e_bw, "c_node_ms": cal.c_node_ms,
               "peak_fp32_flops": cal.peak_fp32, "bandwidth_bytes_per_s": cal.bandwidth, "band": cal.band,
               "median_abs_error_in_sample": statistics.median(abs_in),
               "median_abs_error_leave_one_model_out": statistics.median(abs_loo) if abs_loo else None,
               "max_abs_error_leave_one_model_out": max(abs_loo) if abs_loo else None,
               "median_abs_memory_error": statistics.median(abs_mem) if abs_mem else None,
               "median_abs_error_published": statistics.median(abs_pub) if abs_pub else None,
               "accelerator_efficiency": published.accelerator_efficiency().efficiency}
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "estimate.json", "w", encoding="utf-8") as f:
        f.write(json.dumps({"summary": summary, "local": rows, "published": pub}, indent=2))
    pct = lambda v: "-" if v is None else f"{v:+.0%}"  # noqa: E731
    md = ["# Estimator error", "",
          f"Machine: {summary['machine']}; load average {load0[0]:.1f} before, {load1[0]:.1f} after "
          "(2 cores shared with other benchmarks: the measurements carry that noise).",
          f"Learned (1 thread): {cal.e:.1%} of that thread's FP32 peak ({cal.peak_fp32 / 1e9:.0f} GFLOP/s), "
          + (f"{cal.e_bw:.1%} of bandwidth ({cal.bandwidth / 1e9:.1f} GB/s probed)" if cal.e_bw else
             "no bandwidth term (non-negative fit set it to 0)")
          + f", {cal.c_node_ms * 1000:.1f} µs per operator; band x/÷{cal.band:.2f} (90% of leave-one-model-out errors).",
          "", "## This machine: estimate vs measured (ONNX Runtime FP32, 1 thread, median latency, fresh process)", "",
          "| model | input | GFLOPs | measured ms | estimated ms (in-sample) | err | estimated ms (model left out) | err | memory measured MiB | estimated | err |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['shape']} | {r['gflops']:.2f} | {r['measured_ms']:.1f} | {r['in_sample_ms']:.1f} | "
                  f"{pct(r['in_sample_error'])} | {r['loo_ms'] or 0:.1f} | {pct(r['loo_error'])} | "
                  f"{r['measured_memory_mib']:.0f} | {r['estimated_memory_mib']:.0f} | {pct(r['memory_error'])} |")
    md += ["", f"Median |error|: in-sample {summary['median_abs_error_in_sample']:.0%}, leave-one-model-out "
           f"{summary['median_abs_error_leave_one_model_out']:.0%} (max {summary['max_abs_error_leave_one_model_out']:.0%}); "
           f"memory {summary['median_abs_memory_error']:.0%}.",
           "", "## Published latencies (SPEC.md)", "",
           "| device | model | precision | published ms | estimated ms | err | how |", "|---|---|---|---|---|---|---|"]
    for r in pub:
        e = "-" if r["estimated_ms"] is None else f"{r['estimated_ms']:.1f}"
        md.append(f"| {r['device']} | {r['model']} | {r['precision']} | {r['ms']} | {e} | {pct(r['error'])} | {r['method']} |")
    md += ["", f"Median |error| against published figures: {summary['median_abs_error_published']:.0%}. "
           "The published models enter as whole-model FLOPs (no per-operator breakdown), accelerators with one "
           "efficiency for all: treat an estimate for a box you do not have as a factor-of-a-few figure, which the "
           "band says."]
    with atomic_write(args.out / "estimate.md", "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
