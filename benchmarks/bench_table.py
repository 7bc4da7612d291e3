"""Regenerate the README performance table from scratch, on this machine, in one run.

    .venv/bin/python benchmarks/bench_table.py            # ~5 minutes on 2 cores (plus the one-off INT8 models)
    .venv/bin/python benchmarks/bench_table.py --quick    # a quick look while developing (noisy figures)

Rows: PP-OCRv6 det at 640x640 and 960x960, PicoDet layout at 800x608 (its input is static, so
one size), PP-LCNet orientation at 224 (static), PP-OCRv4 det in Paddle format at 640x640 —
on ONNX Runtime, OpenVINO and Paddle Inference (where each runs the model) in FP32, plus
OpenVINO BF16, at 2 threads; with the anchors (each engine untuned, as users run it) in the
same run. Each configuration runs in its own fresh process (edgedeploy.benchmarking).

What edgedeploy deploys: for PP-OCRv6 det, PicoDet layout and PP-LCNet orientation, the INT8
model ``edgedeploy.optimize.optimize(name, out, engine="openvino", precision="int8",
max_accuracy_drop=0.5)`` makes (accuracy-guarded, at most 0.5 points lost on the task metric)
is benchmarked on OpenVINO (its target) and ONNX Runtime at the same shapes as the FP32 rows,
and stated against the anchors of the FP32 source model. The INT8 files are made once and
cached under the edgedeploy cache (``<cache>/bench-int8/``, keyed by the source model's content
hash and the settings); delete that folder to remake them.

Writes into --out (default benchmarks/results/): perf.md, perf.json, perf.csv, perf.png and
MACHINE.md (CPU, cores, ISA flags, RAM, engine versions). The PP-LCNet rows are run --repeat
times to show how repeatable p50 is on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import psutil

from edgedeploy.benchmarking import BenchConfig, Skipped, plan, report, run_bench
from edgedeploy.benchmarking.power import find_sensor
from edgedeploy.errors import UserError
from edgedeploy.util import atomic_write

HERE = Path(__file__).resolve().parent
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
# (zoo model, shapes, accuracy data set or None, samples): accuracy on the first shape only,
# since the task code resizes the image itself and the figure would repeat.
MODELS = (
    ("ppocrv6-det", ["640x640", "960x960"], "auto", 5),
    ("picodet-layout", [None], None, 0),  # static 1x3x800x608: one size only
    ("pplcnet-orientation", [None], "auto", 20),  # static 224x224
    ("ppocrv4-det-paddle", ["640x640"], "auto", 5),
)
REPEATED = "pplcnet-orientation"
# The models edgedeploy optimises and deploys: INT8 made by `edgedeploy.optimize.optimize` for OpenVINO
# (NNCF QDQ ONNX), benchmarked beside the FP32 rows of their source, on these engines.
OPTIMISED = ("ppocrv6-det", "picodet-layout", "pplcnet-orientation")
INT8_ENGINES = ("openvino", "onnxruntime")
INT8_TARGET = "openvino"
MAX_ACCURACY_DROP = 0.5  # percentage points (optimize's unit): the project's "<= 0.5 points lost" target


def int8_model(name: str, *, max_drop: float = MAX_ACCURACY_DROP, threads: int = 2) -> Path:
    """The INT8 model of zoo model ``name`` from ``optimize(..., engine="openvino", precision="int8")``.

    Made once and kept under the edgedeploy cache (never the source tree), keyed by the source
    model's content hash and the settings; the optimize report sits beside it (``.report.json``).
    Raises :class:`UserError` when INT8 cannot meet the accuracy budget (nothing is cached then).
    """
    from edgedeploy import zoo
    from edgedeploy.ingest import load_model
    from edgedeploy.optimize import optimize, report_path
    from edgedeploy.zoo.fetch import cache_dir

    src = load_model(name)
    out = (cache_dir() / "bench-int8" /
           f"{name}-{src.content_hash()[:16]}-{INT8_TARGET}-int8-drop{max_drop:g}.onnx")
    if out.exists() and report_path(out).exists():
        print(f"[int8] {name}: cached {out}", file=sys.stderr, flush=True)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    optimize(name, out, engine=INT8_TARGET, precision="int8", task=zoo.entry(name).task,
             max_accuracy_drop=max_drop, threads=threads,
             progress=lambda msg: print(f"[int8] {name}: {msg}", file=sys.stderr, flush=True))
    print(f"[int8] {name}: made {out} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return out


def machine() -> dict:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M).group(1).split()) if "flags" in cpuinfo else set()
    hypervisor = "hypervisor" in flags
    versions = {}
    for dist in ("onnxruntime", "openvino", "paddlepaddle", "paddle2onnx", "numpy", "edgedeploy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    sensor, reasons = find_sensor()
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores_usable": len(os.sched_getaffinity(0)), "cores_logical": psutil.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False), "virtualised": hypervisor,
        "isa": {f: f in flags for f in ISA_FLAGS}, "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "versions": versions, "power_sensor": sensor.name if sensor else f"none ({'; '.join(reasons)})",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def machine_md(m: dict) -> str:
    isa = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in m["isa"].items())
    lines = [
        "# Machine the performance table was measured on", "",
        f"- CPU: {m['cpu']} ({m['cores_usable']} usable cores, {m['cores_physical']} physical, "
        f"{'virtual machine' if m['virtualised'] else 'bare metal'})",
        f"- ISA: {isa}", f"- RAM: {m['ram_gb']} GB", f"- OS: {m['os']}, Python {m['python']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- Power sensor: {m['power_sensor']}", f"- Load average at start: {m['load_average_at_start']}",
        f"- Date: {m['date']}", "",
        "OpenVINO on a CPU with avx512_bf16 or AMX runs float models in BF16 unless told otherwise: the "
        "'OpenVINO default (anchor)' rows are that default; 'openvino fp32 (edgedeploy)' forces f32.",
        "", ISA_NOTE,
    ]
    return "\n".join(lines) + "\n"


ISA_NOTE = """## Which figures depend on the ISA

Measured with the same engines and models, these figures change with the CPU's instruction set
(AVX2 only; AVX-512 with VNNI and BF16, e.g. AMD EPYC; Intel Xeon with AMX), so a figure from
one machine is no threshold for another:

| figure | why it moves | how big (measured) |
|---|---|---|
| every INT8 latency (ORT QDQ, OpenVINO/NNCF) and INT8 speed-ups | VNNI (`vpdpbusd`) or AMX tiles vs AVX2 multiply-add | INT8 can be slower than FP32 without VNNI |
| INT8 output agreement (SQNR) between engines and against FP32 | other kernels, other rounding and saturation | PicoDet INT8 on OpenVINO: 12-20 dB (AMD EPYC, no AMX), 7.7 dB (Intel Xeon with AMX); the INT8 neck of `tests/optimize`: ~140 dB OpenVINO vs ORT with AVX-512 VNNI, ~16 dB with `ONEDNN_MAX_CPU_ISA=AVX2` |
| OpenVINO 'default (anchor)' rows | BF16 inference by default where `avx512_bf16` or AMX exist, FP32 elsewhere | latency and outputs both |
| `bench --precision bf16/fp16` rows | native BF16/FP16 only with `avx512_bf16`/AMX/`avx512_fp16`; emulated (slow) otherwise | |
| FP32 latencies | AVX-512 vs AVX2 width, core count and clock | |

Not ISA-dependent: model sizes, parameter counts, FLOPs; and, within the accuracy budget, task
metrics (INT8 PicoDet layout hmean on OpenVINO 0.978 vs FP32 0.957 on 8 generated pages here,
while its output SQNR is 12-20 dB here and 7.7 dB with AMX).
The tests therefore assert task metrics, or compare against a reference measured in the same
run (the engine's own FP32 output, the INT8 rounding noise on the reference engine), and run
the OpenVINO checks once more under `ONEDNN_MAX_CPU_ISA=AVX2`."""


def wait_for_quiet(max_wait_s: float, busy_below: float = 0.25) -> float:
    """Wait (up to ``max_wait_s``) until the CPUs are less than ``busy_below`` busy; returns the busy share seen.

    On a shared machine other people's jobs inflate every figure; each row's own record of
    that (``system_cpu_others``) still says how noisy it was.
    """
    deadline = time.perf_counter() + max_wait_s
    while True:
        busy = psutil.cpu_percent(interval=0.5) / 100
        if busy < busy_below or time.perf_counter() >= deadline:
            return busy
        time.sleep(1.0)


def repeatability(runs: list[list]) -> list[dict]:
    """Per scheme: the p50 of each repeat and the spread (max - min) / median."""
    out = []
    for rows in zip(*runs):
        p50s = [r.p50 for r in rows if r.ok]
        if len(p50s) < 2:
            continue
        med = statistics.median(p50s)
        out.append({"scheme": rows[0].scheme, "p50_ms": p50s, "median_ms": med,
                    "spread_pct": 100 * (max(p50s) - min(p50s)) / med})
    return out


def int8_rows(name: str, fp32_rows: list[BenchConfig], threads: int,
              made: dict[str, Path]) -> tuple[list[BenchConfig], list[Skipped]]:
    """Rows for the INT8 model of ``name``, one per engine in :data:`INT8_ENGINES`, like ``fp32_rows``
    (same shape, settings, accuracy data); a model optimize refuses becomes skipped rows with the reason.
    ``made`` collects name -> INT8 file."""
    base = fp32_rows[0]
    try:
        path = int8_model(name, threads=threads)
    except UserError as exc:
        reason = f"edgedeploy optimize made no INT8 model: {' '.join(str(exc).split())}"
        return [], [Skipped(name, base.shape_str, e, "int8", reason) for e in INT8_ENGINES]
    made[name] = path
    rows = [dataclasses.replace(base, model=str(path), source=name, engine=e, untuned=False, precision="fp32",
                                threads=threads, label=f"{e} int8 (edgedeploy optimize)") for e in INT8_ENGINES]
    return rows, []


def int8_notes(paths: dict[str, Path]) -> list[str]:
    """One line per INT8 model: what optimize measured when it made it (from the report beside it)."""
    import json

    from edgedeploy.optimize import report_path

    lines = []
    for name, path in paths.items():
        try:
            r = json.loads(report_path(path).read_text())
        except (OSError, ValueError):
            continue
        lines.append(f"- {name}: {r['recipe']} for {r['engine']}; {100 * r['accuracy_before']:.1f} → "
                     f"{100 * r['accuracy_after']:.1f} % (drop {r['accuracy_drop_points']:.2f} points, budget "
                     f"{r['max_accuracy_drop_points']:g}), {r['metric_source']}; "
                     f"{len(r.get('float_layers') or [])} layer(s) kept in float")
    return lines


def method(args, m: dict) -> str:
    """The method paragraph printed above the table."""
    return (f"each row is measured by `edgedeploy.benchmarking` in its own fresh Python process (one after another, "
            f"all in one run of `benchmarks/bench_table.py`, machine in MACHINE.md); after {args.warmup} untimed "
            f"warm-up run(s), up to {args.runs} timed runs or {args.time_budget:g} s per row, batch 1; edgedeploy rows "
            f"use {args.threads} intra-op threads, anchors the engine's own default thread count "
            f"({m['cores_usable']} usable cores here); {report.METHOD}; INT8 rows: the model "
            f"`edgedeploy optimize --engine openvino --precision int8 --max-accuracy-drop {MAX_ACCURACY_DROP:g}` "
            f"writes, run through edgedeploy's engine path; accuracy: the task metric on generated data "
            f"(edgedeploy.datasets, seed 0), on the first shape of each model only")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--time-budget", type=float, default=4.0, help="seconds of timed runs per row at most")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help=f"times to run the {REPEATED} rows")
    ap.add_argument("--quiet-wait", type=float, default=5.0,
                    help="seconds to wait, before each row, for other processes to leave the CPUs idle")
    ap.add_argument("--no-int8", action="store_true", help="leave out the INT8 rows (edgedeploy optimize)")
    ap.add_argument("--quick", action="store_true",
                    help="development: 8 runs / 1 s per row, 1 warm-up, no repeats, no quiet wait (noisy figures)")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.time_budget, args.warmup, args.repeat, args.quiet_wait = 8, 1.0, 1, 1, 0.0

    m = machine()
    settings = dict(runs=args.runs, time_budget_s=args.time_budget, warmup=args.warmup, timeout_s=240.0)
    optimised = [] if args.no_int8 else [n for n in OPTIMISED if any(n == x[0] for x in MODELS)]
    configs, skipped, repeat_configs, int8_paths = [], [], [], {}
    for name, shapes, dataset, samples in MODELS:
        for i, shape in enumerate(shapes):
            c, s = plan([name], engine_names=["onnxruntime", "openvino", "paddle"], precisions=["fp32", "bf16"],
                        threads=[args.threads], shapes=[shape] if shape else [], anchors=True,
                        dataset=dataset if i == 0 else None, samples=max(samples, 1), **settings)
            if name in optimised:
                extra, s8 = int8_rows(name, [x for x in c if not x.untuned], args.threads, int8_paths)
                c, s = c + extra, s + s8
            configs += c
            skipped += s
            if name == REPEATED:
                repeat_configs = [dataclasses.replace(x, dataset=None) for x in c]

    start = time.perf_counter()

    def step(i, n, cfg):
        if cfg is not None:
            wait_for_quiet(args.quiet_wait)
            print(f"[{i + 1}/{n}] {cfg.compared_model} {cfg.shape_str} {cfg.scheme}  "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    results = run_bench(configs, progress=step)
    repeats = [[r for r in results if r.config.compared_model == REPEATED]]
    for k in range(args.repeat - 1):
        print(f"repeat {k + 2}/{args.repeat} of {REPEATED}", file=sys.stderr, flush=True)
        repeats.append(run_bench(repeat_configs, progress=lambda i, n, c: c and wait_for_quiet(args.quiet_wait)))
    spread = repeatability(repeats)
    m["elapsed_s"] = round(time.perf_counter() - start, 1)
    m["settings"] = {"runs": args.runs, "time_budget_s": args.time_budget, "warmup": args.warmup,
                     "threads": args.threads, "repeat": args.repeat, "quick": args.quick}

    out = args.out
    report.write(results, skipped, json_path=out / "perf.json", csv_path=out / "perf.csv", plot_path=out / "perf.png",
                 machine={**m, "repeatability": spread})
    md = [f"# edgedeploy performance table ({m['cpu']}, {args.threads} threads)", "",
          f"Generated by `benchmarks/bench_table.py{' --quick' if args.quick else ''}` on {m['date']} in "
          f"{m['elapsed_s']:g} s; machine: see MACHINE.md."
          + (" QUICK RUN (development): few runs per row, figures are rough." if args.quick else ""), "",
          report.to_markdown(results, skipped, method=method(args, m))]
    notes = int8_notes(int8_paths)
    if notes:
        md += ["INT8 models (made by `edgedeploy.optimize.optimize`, accuracy as optimize measured it, seed 1000):", "",
               *notes, ""]
    if len(repeats) > 1:
        md += [f"## Repeatability ({REPEATED}, {len(repeats)} runs of each row)", "",
               "| scheme | p50 ms per run | spread (max-min)/median |", "|---|---|---:|"]
        md += [f"| {s['scheme']} | {', '.join(f'{v:.2f}' for v in s['p50_ms'])} | {s['spread_pct']:.1f}% |"
               for s in spread]
    noisy = [r for r in results if r.ok and (r.system_cpu_others or 0) > 0.1]
    if noisy:
        md += ["", f"{len(noisy)} row(s) ran while other processes used over 10% of the CPUs (see `system_cpu_others` "
                   "in perf.json): those figures are noisier."]
    with atomic_write(out / "perf.md", "w") as f:
        f.write("\n".join(md) + "\n")
    with atomic_write(out / "MACHINE.md", "w") as f:
        f.write(machine_md(m))
    print("\n".join(md))
    print(f"wrote {out}/perf.md, perf.json, perf.csv, perf.png, MACHINE.md in {m['elapsed_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
