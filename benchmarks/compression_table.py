"""The seed's compression table, measured: technique, size ratio, accuracy loss, speed-up.

For each zoo model, ``edgedeploy.optimize.optimize(engine="auto", precision="int8")`` makes the
graph-optimised FP32 model and each engine's INT8 (ORT quantize_static QDQ U8S8 for ONNX
Runtime, NNCF for OpenVINO), scores each on the model's task (generated data, seed 1000) and
times every candidate interleaved in one process (see ``edgedeploy.optimize.latency``) next to
the untuned anchors (``onnxruntime.InferenceSession(path)``; ``openvino.Core().compile_model``).
Models in :data:`PRUNE` are also optimised with ``prune=RATIO``: structured pruning, distillation
from the original on the task's generated data, then the same INT8 recipes and accuracy guard
(the budget is measured against the original FP32 model); their rows say "pruned".
Writes ``benchmarks/results/compression.{md,json}``; with ``--models``, the other models' rows
already there are kept.

    .venv/bin/python benchmarks/compression_table.py [--models pplcnet-orientation ...] [--rounds 5]
        [--prune picodet-layout=0.3 ...] [--no-prune]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import bench_table  # this folder's performance table (a script beside this one)

MODELS = ("ppocrv6-det", "picodet-layout", "pplcnet-orientation")
OUT = Path(__file__).parent / "results"
# Targets from the issue: INT8 >= 3.5x smaller, <= 0.5 points lost, det >= 3.8x faster than ORT default.
TARGET_RATIO, TARGET_DROP, TARGET_DET_SPEEDUP = 3.5, 0.5, 3.8
# the pruning ratios the performance table uses (one place): the largest that keeps INT8 within budget here
PRUNE = bench_table.PRUNE


def rows_for(r, pruned: float = 0.0) -> list[dict]:
    anchor = r.latency("ORT default FP32 (anchor)")
    before = {t: r.latency(f"fp32 on {t}") for t in ("onnxruntime", "openvino")}
    out = [] if pruned else [{"model": r.model, "technique": "none (anchor)", "engine": "onnxruntime default", "size_ratio": 1.0,
            "accuracy_before": r.accuracy_before, "accuracy_after": r.accuracy_before, "latency_ms": anchor,
            "speedup": 1.0}]
    ov = r.latency("OpenVINO default (anchor)")
    if ov and not pruned:
        out.append({"model": r.model, "technique": "none (anchor, OpenVINO's own precision)", "engine": "openvino default",
                    "size_ratio": 1.0, "accuracy_before": None, "accuracy_after": None, "latency_ms": ov,
                    "speedup": anchor / ov})
    for label, lat in r.latency_ms.items():
        if " on " not in label or label.startswith("fp32 on"):
            continue
        tech, engine = label.split(" on ")
        trial = next((t for t in r.trials if t.engine == engine), None)
        size = (trial.size_bytes if tech == "int8" and trial else None)
        after = r.candidate_accuracy.get(label, trial.accuracy if tech == "int8" and trial else None)
        technique = {"int8": f"INT8 ({trial.recipe if trial else ''})",
                     "fp32-graph": "graph optimisation (FP32)"}.get(tech, tech)
        if pruned:
            technique = f"pruned {pruned:.0%} + distilled, " + technique.replace("graph optimisation (FP32)", "FP32")
        out.append({"model": r.model, "technique": technique,
                    "engine": engine, "size_ratio": r.size_before / size if size else None,
                    "accuracy_before": r.accuracy_before_by_engine.get(engine, r.accuracy_before),
                    "accuracy_after": after,
                    "latency_ms": lat["median_ms"], "fp32_same_engine_ms": before[engine],
                    "speedup": anchor / lat["median_ms"], "chosen": label == r.latency_after_label, "pruned": pruned})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-accuracy-drop", type=float, default=TARGET_DROP)
    ap.add_argument("--prune", nargs="*", default=[f"{k}={v}" for k, v in PRUNE.items()], metavar="MODEL=RATIO",
                    help="models to also optimise with pruning + distillation (default: %(default)s)")
    ap.add_argument("--no-prune", action="store_true", help="skip the pruned runs")
    args = ap.parse_args()
    prune = {} if args.no_prune else {k: float(v) for k, v in (p.split("=") for p in args.prune)}
    warnings.simplefilter("ignore")
    from edgedeploy.optimize import optimize

    from edgedeploy.errors import UserError, VerdictError

    reports, rows, refused = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(name, 0.0) for name in args.models] + [(n, prune[n]) for n in args.models if n in prune]
        for name, ratio in runs:
            t = time.time()
            key = f"{name} pruned {ratio:.0%}" if ratio else name
            say = lambda msg, n=key: print(f"[{n}] {msg}", flush=True)  # noqa: E731
            kw = dict(engine="auto", precision="int8", latency_rounds=args.rounds, progress=say, prune=ratio)
            try:
                r = optimize(name, Path(tmp) / f"{name}.onnx", max_accuracy_drop=args.max_accuracy_drop, **kw)
            except (UserError, VerdictError) as exc:  # refused: say so, then measure it anyway for the table
                refused[key] = str(exc)
                say(f"refused: {exc}")
                r = optimize(name, Path(tmp) / f"{name}.onnx", max_accuracy_drop=100.0, goal="size", **kw)
            print(f"[{key}] done in {time.time() - t:.0f} s", flush=True)
            reports.append({**r.to_dict(), "pruned": ratio, "key": key})
            rows += [{**x, "over_budget": key in refused} for x in rows_for(r, ratio)]
    if (OUT / "compression.json").exists():  # keep the rows of models not run this time
        old = json.loads((OUT / "compression.json").read_text())
        keep = lambda m: m not in args.models  # noqa: E731
        rows = [x for x in old["rows"] if keep(x["model"])] + rows
        reports = [x for x in old["reports"] if keep(x["model"])] + reports
        refused = {**{k: v for k, v in old["refused"].items() if keep(k.split(" ")[0])}, **refused}
        order = {m: i for i, m in enumerate(MODELS)}
        rows.sort(key=lambda x: (order.get(x["model"], 99), bool(x.get("pruned"))))
        reports.sort(key=lambda x: (order.get(x["model"], 99), bool(x.get("pruned"))))
    OUT.mkdir(exist_ok=True)
    (OUT / "compression.json").write_text(json.dumps({"rows": rows, "reports": reports, "refused": refused}, indent=2, default=str))
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    lines = ["| model | technique | engine | size ratio | accuracy before → after | latency ms (median) | "
             "speed-up vs ORT default FP32 | chosen |", "|---|---|---|---|---|---|---|---|"]
    for x in rows:
        acc = "-" if x["accuracy_before"] is None else (
            f"{100 * x['accuracy_before']:.1f} → {fmt(None if x['accuracy_after'] is None else 100 * x['accuracy_after'], '.1f')}")
        lines.append(f"| {x['model']} | {x['technique']} | {x['engine']} | {fmt(x['size_ratio'], '.2f')} | {acc} | "
                     f"{fmt(x['latency_ms'], '.1f')} | {fmt(x['speedup'], '.2f')}x | "
                     f"{'OVER BUDGET' if x['over_budget'] and 'INT8' in x['technique'] else 'yes' if x.get('chosen') else ''} |")
    lines.append("")
    lines.append(f"Latency: {reports[0]['latency_method']}. Accuracy: each model's task metric on generated data "
                 "(seed 1000), in %; a pruned model's accuracy is compared with the original FP32 model's. Size ratio: "
                 "original FP32 file / INT8 file.")
    lines.append("")
    for r in reports:
        ok_ratio = r["size_ratio"] >= TARGET_RATIO
        ok_drop = r["accuracy_drop_points"] <= TARGET_DROP
        ov = r["latency_ms"].get("OpenVINO default (anchor)", {}).get("median_ms")
        best_untuned = min(v for v in (r["latency_ms"]["ORT default FP32 (anchor)"]["median_ms"], ov) if v)
        mine = r["latency_ms"][r["latency_after_label"]]["median_ms"]
        key = r.get("key", r["model"])
        line = (f"- {key}: chosen {r['latency_after_label']}; size {r['size_ratio']:.2f}x "
                f"({'meets' if ok_ratio else 'MISSES'} {TARGET_RATIO}x); drop {r['accuracy_drop_points']:.2f} points "
                f"({'meets' if ok_drop else 'MISSES'} {TARGET_DROP}); {r['speedup_vs_ort_default']:.2f}x vs ORT default; "
                f"{mine:.1f} ms vs best untuned {best_untuned:.1f} ms ({'not slower' if mine <= best_untuned else 'SLOWER'})")
        if key in refused:
            line = f"- {key}: REFUSED at {args.max_accuracy_drop} points: {refused[key]}\n  (measured with the budget lifted:) " + line[2:]
        if r.get("pruned"):
            line += "; " + next((p for p in r["passes"] if p.startswith("prune")), "")
        if r["model"] == "ppocrv6-det":
            line += f"; det speed-up target {TARGET_DET_SPEEDUP}x {'met' if r['speedup_vs_ort_default'] >= TARGET_DET_SPEEDUP else 'MISSED'}"
        lines.append(line)
    (OUT / "compression.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
