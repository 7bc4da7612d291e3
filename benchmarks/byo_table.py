"""Issue 13's table: your own model, start to finish — model x form x INT8 accuracy x speed-up x size ratio x time.

Models edgedeploy has never seen (``tests/byo/models.py``: residual classifier, transformer encoder,
YOLO-style detector, U-Net; BatchNorm statistics from data), each from three forms: the
``nn.Module`` in Python, a TorchScript ``.pt`` (card beside it) and an ONNX export (card drafted by
``edgedeploy card init`` and completed). Each goes through ``optimize`` (INT8, ``engine=auto``,
calibration from an image folder written to disk, accuracy = agreement with FP32 on held-out images,
split by a fixed seed). A refusal (over budget, or not faster than the best FP32 configuration on
its engine) is a row too: nothing is written then. Then a zoo model treated as a stranger: PP-LCNet
orientation given only its ONNX file, a card, and an ImageNet-style folder of generated rotated
pages, against the zoo path. Writes ``benchmarks/results/byo.{md,json}`` (``byo-budgetB.*`` with ``--budget B``).

    PYTHONPATH=src:. .venv/bin/python benchmarks/byo_table.py [--size 160] [--images 320] [--models resnet yolo]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results"


def _row(model: str, form: str, fn) -> dict:
    from edgedeploy.errors import VerdictError

    t = time.perf_counter()
    try:
        r = fn()
    except VerdictError as exc:
        fig = exc.figures
        held = [tr for tr in fig.get("trials", []) if tr.get("within_budget")]  # INT8 within budget, refused on speed
        reached = {}
        if held:
            tr = max(held, key=lambda tr: tr["accuracy"])
            before = (fig.get("accuracy_before") or {}).get(tr["engine"], 1.0)
            reached = {"int8_engine": tr["engine"], "int8_accuracy": tr["accuracy"],
                       "int8_drop_points": round(100 * (before - tr["accuracy"]), 3),
                       "float_layers": [f"{f['op']} {f['name']}" for f in tr["float_layers"]]}
        return {"model": model, "form": form, "written": False, "verdict": str(exc)[:400],
                "time_s": round(time.perf_counter() - t, 1), "metric": fig.get("metric"), **reached}
    except Exception as exc:  # one failed row must not lose the others; the row says why
        return {"model": model, "form": form, "written": False, "verdict": f"FAILED: {type(exc).__name__}: {exc}"[:400],
                "time_s": round(time.perf_counter() - t, 1)}
    return {"model": model, "form": form, "written": True, "engine": r.engine, "precision": r.precision,
            "metric": r.metric, "accuracy_before": r.accuracy_before, "accuracy_after": r.accuracy_after,
            "drop_points": round(r.accuracy_drop_points, 3), "ci_points": r.accuracy_ci_points,
            "speedup_vs_fp32_same_engine": r.speedup_vs_fp32 and round(r.speedup_vs_fp32, 2),
            "speedup_vs_ort_default": r.speedup and round(r.speedup, 2), "size_ratio": round(r.size_ratio, 2),
            "float_layers": [f"{f['op']} {f['name']}" for f in r.float_layers], "calibration": r.calibration,
            "time_s": round(time.perf_counter() - t, 1)}


def _own_models(args, work: Path) -> list[dict]:
    import cv2
    import torch
    import yaml

    from edgedeploy import cards
    from edgedeploy.cli import main
    from edgedeploy.ingest import from_torch
    from edgedeploy.optimize import optimize
    from tests.byo.models import CARD, build, images, to_input

    folder = work / "images"
    for i, im in enumerate(images(args.images, 21, args.size)):
        sub = folder / "shots" / f"part{i % 3}"  # nested (read recursively), not class folders
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i:04d}.jpg"), im)
    common = dict(engine=args.engine, calib=str(folder), max_accuracy_drop=args.budget, latency_rounds=args.rounds)
    rows = []
    tasks = {"resnet": "classification", "transformer": "classification", "yolo": "detection", "unet": "segmentation"}
    for name in args.models:
        net = build(name, size=args.size)
        card_dict = {**CARD, "size": [args.size, args.size], "task": tasks[name]}
        card = cards.parse(card_dict)
        d = work / name
        d.mkdir()
        rows.append(_row(name, "nn.Module", lambda: optimize(net, d / "m.int8.onnx", card=card, **common)))
        print(rows[-1], flush=True)
        # check_trace off: the transformer's fast path differs between the trace and its re-run check
        torch.jit.trace(net, to_input(images(1, 0, args.size)), check_trace=False).save(str(d / "net.pt"))
        (d / "net.card.yaml").write_text(yaml.safe_dump(card_dict))
        rows.append(_row(name, "TorchScript .pt", lambda: optimize(d / "net.pt", d / "pt.int8.onnx", **common)))
        print(rows[-1], flush=True)
        onnx_dir = d / "onnx"
        from_torch(net, card=card, out=onnx_dir / "net.onnx")
        main(["card", "init", str(onnx_dir / "net.onnx")])  # the draft from the graph, then completed by hand:
        draft = yaml.safe_load((onnx_dir / "net.card.yaml").read_text())
        (onnx_dir / "net.card.yaml").write_text(yaml.safe_dump({**draft, **{k: card_dict[k]
                                                                           for k in ("mean", "std", "task")}}))
        rows.append(_row(name, "ONNX + card init", lambda: optimize(onnx_dir / "net.onnx", d / "onnx.int8.onnx",
                                                                   **common)))
        print(rows[-1], flush=True)
    return rows


def _stranger(args, work: Path) -> list[dict]:
    """PP-LCNet orientation as a stranger: its ONNX file, a card, a class-folder data set on disk."""
    import cv2
    import yaml

    from edgedeploy import cards, datasets, zoo
    from edgedeploy.optimize import optimize

    entry = zoo.entry("pplcnet-orientation")
    d = work / "stranger"
    d.mkdir()
    shutil.copy(zoo.fetch(entry.name).path, d / "lcnet.onnx")
    card = cards.from_zoo(entry).model_dump(mode="json")  # what a user would write from the model's docs
    (d / "lcnet.card.yaml").write_text(yaml.safe_dump({k: v for k, v in card.items() if v is not None}))
    for s in datasets.generate("orientation", args.pages, 7):
        sub = d / "pages" / s.label
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{s.index:04d}.png"), s.image)
    common = dict(engine=args.engine, max_accuracy_drop=args.budget, latency_rounds=args.rounds)
    rows = [_row("pplcnet-orientation", "ONNX + card + class folders",
                 lambda: optimize(d / "lcnet.onnx", d / "s.int8.onnx", calib=str(d / "pages"), **common))]
    print(rows[-1], flush=True)
    rows.append(_row("pplcnet-orientation", "zoo path (generated data)",
                     lambda: optimize(entry.name, d / "z.int8.onnx", **common)))
    print(rows[-1], flush=True)
    return rows


def _stranger_vs_zoo(args, work: Path, rows: list[dict]) -> dict:
    """Both paths' INT8 models and the FP32 model timed in one interleaved run: the speed-up figures to compare.

    Each optimize run above times its candidates in its own run, one after the other, so load that
    changes between them moves one path's figure and not the other's. Here both INT8 files (made
    with goal size, so that both exist whatever the speed verdict) and the FP32 configurations on
    the same engine alternate in one process.
    """
    import numpy as np
    import onnx

    from edgedeploy import engines, zoo
    from edgedeploy.optimize import latency, optimize

    d = work / "stranger"
    entry = zoo.entry("pplcnet-orientation")
    chosen = [r["engine"] for r in rows if r["model"] == "pplcnet-orientation" and r["written"]]
    eng = args.engine if args.engine != "auto" else (chosen[-1] if chosen else
                                                     "openvino" if engines.available("openvino") else "onnxruntime")
    common = dict(engine=eng, max_accuracy_drop=args.budget, latency_rounds=1, goal="size")
    made = {"stranger (ONNX + card + class folders)": optimize(d / "lcnet.onnx", d / "cmp-s.int8.onnx",
                                                               calib=str(d / "pages"), **common),
            "zoo path (generated data)": optimize(entry.name, d / "cmp-z.int8.onnx", **common)}
    files = {"stranger (ONNX + card + class folders)": d / "cmp-s.int8.onnx", "zoo path (generated data)": d / "cmp-z.int8.onnx"}
    plan = latency.plan_for
    fp32 = {f"FP32 on {eng}, the engine's defaults": plan(d / "lcnet.onnx", eng, anchor=True),
            f"FP32 on {eng}, 2 threads": plan(d / "lcnet.onnx", eng)}
    cands = fp32 | {f"INT8 {k}": plan(f, eng, precision="int8") for k, f in files.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    rounds = 4 * args.rounds
    lat = latency.measure(cands, x, rounds=rounds)
    best = min(fp32, key=lambda k: lat[k].median_ms)
    out = {"engine": eng, "method": latency.method(rounds=rounds), "fp32_baseline": best,
           "latency_ms": {k: v.to_dict() for k, v in lat.items()}, "paths": {}}
    for k, r in made.items():
        g = onnx.load(str(files[k])).graph
        out["paths"][k] = {"accuracy": r.accuracy_after, "metric": r.metric, "calibration": r.calibration,
                           "recipe": r.recipe, "nodes": len(g.node), "size_ratio": round(r.size_ratio, 2),
                           "speedup_vs_fp32": round(lat[best].median_ms / lat[f"INT8 {k}"].median_ms, 2)}
    print(out, flush=True)
    return out


def _compare_markdown(c: dict) -> list[str]:
    lines = ["", "## PP-LCNet: stranger against the zoo path, one interleaved run", "",
             f"Both INT8 files (goal size, so both exist) and the FP32 model on {c['engine']}, timed alternating "
             f"in one process ({c['method']}). Speed-up against the faster FP32 configuration ({c['fp32_baseline']}).", "",
             "| path | INT8 accuracy (how measured) | recipe | INT8 nodes | speed-up vs FP32 | size ratio | calibration |",
             "|---|---|---|---|---|---|---|"]
    for k, p in c["paths"].items():
        lines.append(f"| {k} | {100 * p['accuracy']:.2f} ({p['metric']}) | {p['recipe']} | {p['nodes']} | "
                     f"{p['speedup_vs_fp32']}x | {p['size_ratio']}x | {p['calibration']} |")
    lines += ["", "| configuration | median ms (95% interval) |", "|---|---|"]
    lines += [f"| {k} | {v['median_ms']} ({v['p50_low']}-{v['p50_high']}) |" for k, v in c["latency_ms"].items()]
    return lines


def _markdown(rows: list[dict], args, compare: dict | None = None) -> str:
    lines = [f"# Your own model, start to finish (issue 13)\n",
             f"Input {args.size}x{args.size}, {args.images} images (calibration/held-out split by seed 0), engine "
             f"{args.engine}, budget {args.budget} point(s), latency {args.rounds} interleaved rounds "
             "(edgedeploy.optimize.latency). Speed-up: vs the best FP32 configuration on the same engine, and vs "
             "ORT default FP32. A refused row wrote nothing.\n",
             "| model | form | result | INT8 accuracy (how measured) | drop (95% CI) | speed-up vs FP32 same engine |"
             " vs ORT default | size ratio | kept in float | time |", "|" + "---|" * 10]
    for r in rows:
        if r["written"]:
            lines.append(f"| {r['model']} | {r['form']} | {r['precision']} on {r['engine']} | "
                         f"{100 * r['accuracy_after']:.2f} ({r['metric']}) | {r['drop_points']:.2f} "
                         f"(±{r['ci_points'] if r['ci_points'] is not None else '-'}) | {r['speedup_vs_fp32_same_engine']}x"
                         f" | {r['speedup_vs_ort_default']}x | {r['size_ratio']}x | "
                         f"{', '.join(r['float_layers']) or '-'} | {r['time_s']} s |")
        else:
            v = r["verdict"]
            if "best reached — " in v:  # the figures that matter: what each engine reached, what it kept in float
                v = f"{r.get('metric') or ''}: " + v.split("best reached — ", 1)[1].split("; nothing was written")[0]
            if r.get("int8_accuracy") is not None:  # within the budget, refused for speed: what INT8 reached
                v = (f"{100 * r['int8_accuracy']:.2f} ({r['metric']}, INT8 on {r['int8_engine']}) — refused: "
                     + v.split("; nothing was written")[0])
                kept = ", ".join(r["float_layers"]) or "-"
                lines.append(f"| {r['model']} | {r['form']} | refused, nothing written | {v[:330]} | "
                             f"{r['int8_drop_points']:.2f} | | | | {kept[:160]} | {r['time_s']} s |")
                continue
            lines.append(f"| {r['model']} | {r['form']} | refused, nothing written | {v[:330]} | | | | | |"
                         f" {r['time_s']} s |")
    if compare:
        lines += _compare_markdown(compare)
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["resnet", "transformer", "yolo", "unet"])
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--images", type=int, default=320)
    p.add_argument("--pages", type=int, default=200)
    p.add_argument("--engine", default="auto")
    p.add_argument("--budget", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-stranger", action="store_true")
    p.add_argument("--stem", help="Results file name (default: byo, or byo-budgetB with --budget B).")
    p.add_argument("--render", type=Path, help="Only rewrite the Markdown from this JSON results file.")
    args = p.parse_args()
    if args.render:
        data = json.loads(args.render.read_text())
        args.__dict__.update(data["args"])
        args.render.with_suffix(".md").write_text(_markdown(data["rows"], args, data.get("stranger_vs_zoo")))
        return
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="byo-") as work:
        rows = _own_models(args, Path(work))
        compare = None
        if not args.no_stranger:
            rows += _stranger(args, Path(work))
            compare = _stranger_vs_zoo(args, Path(work), rows)
    OUT.mkdir(exist_ok=True)
    stem = args.stem or ("byo" if args.budget == 1.0 else f"byo-budget{args.budget:g}")
    (OUT / f"{stem}.json").write_text(json.dumps({"args": vars(args), "rows": rows, "stranger_vs_zoo": compare},
                                                 indent=2, default=str))
    (OUT / f"{stem}.md").write_text(_markdown(rows, args, compare))
    print(_markdown(rows, args, compare))


if __name__ == "__main__":
    main()
