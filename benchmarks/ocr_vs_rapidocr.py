"""End-to-end OCR: the rapidocr package (the reference application) against edgedeploy's
OCRSystem, on the same generated pages, at the same thread count.

    .venv/bin/python benchmarks/ocr_vs_rapidocr.py              # 12 pages, ~2 minutes on 2 cores
    .venv/bin/python benchmarks/ocr_vs_rapidocr.py --pages 4    # a quick look

Both run the same files: PP-OCRv6 det + rec (small) and the mobile v2.0 0/180 classifier from
the rapidocr 3.10.0 wheel (rapidocr is pointed at the files inside its package; the network is
blocked while it loads and runs, so it cannot download anything). rapidocr runs as shipped
(ONNX Runtime, its own pre/post-processing) with its ORT intra-op threads set to --threads and
inter-op to 1; ours runs on ONNX Runtime and on OpenVINO (FP32) with EngineOptions(threads=...),
and as ``presets.fast_ocr()`` (edgedeploy.presets.FAST, on OpenVINO): det INT8 (NNCF, made
once by edgedeploy.optimize under its accuracy guard and cached; the first run takes a few minutes
more), det input 640 px (the page's own size, no upscale to 736), cls in one batch, rec in BF16
one line per run without the 320 px minimum width; and the same preset with det at rapidocr's 736 px,
to show what the det size alone is worth.
Every system reads one warm-up page first; then the pages go round-robin (page i on every
system before page i+1), so a busy shared machine slows all systems alike. Scoring is
edgedeploy.evaluation.runner.score_ocr for all: each true line paired with the predicted line
of highest IoU >= 0.5 and scored on its text (missed lines read as "").

Writes benchmarks/results/ocr_vs_rapidocr.md and .json (or into --out).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import socket
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgedeploy import datasets, engines, presets, tasks, zoo
from edgedeploy.engines import EngineOptions
from edgedeploy.evaluation import score_ocr
from edgedeploy.util import atomic_write

HERE = Path(__file__).resolve().parent


@contextmanager
def no_network():
    """Any attempt to open a connection raises: proves nothing is downloaded."""
    def refuse(*args, **kwargs):
        raise RuntimeError(f"network access attempted: {args[:2]}")
    saved = socket.socket.connect, socket.create_connection
    socket.socket.connect, socket.create_connection = refuse, refuse
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection = saved


def rapidocr_system(threads: int):
    """rapidocr as shipped, its models taken from its own package directory."""
    import rapidocr
    from rapidocr import RapidOCR

    models = Path(rapidocr.__file__).parent / "models"
    engine = RapidOCR(params={
        "Global.log_level": "warning",
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        "Det.model_path": str(models / "PP-OCRv6_det_small.onnx"),
        "Cls.model_path": str(models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
        "Rec.model_path": str(models / "PP-OCRv6_rec_small.onnx"),
    })

    def read(image):
        out = engine(image)
        if out.boxes is None or out.txts is None:
            return [], []
        return list(np.asarray(out.boxes, np.float32)), list(out.txts)
    return read


def our_system(engine: str, threads: int, fast: bool = False, det_side: int | None = None):
    if fast and det_side:  # the fast preset with another det input size (rapidocr's is 736)
        from dataclasses import replace

        from edgedeploy.presets import FAST, build_system

        preset = replace(FAST, det=replace(FAST.det, options={**FAST.det.options, "limit_side_len": det_side}))
        ocr = build_system(preset, engine=engine, threads=threads)
    elif fast:
        ocr = presets.fast_ocr(engine=engine, threads=threads)
    else:
        options = EngineOptions(threads=threads)
        stages = {}
        for task, name in (("det", "ppocrv6-det"), ("cls", "ppocr-cls"), ("rec", "ppocrv6-rec")):
            model = zoo.fetch(name)
            stages[task] = tasks.build(task, engines.load(model.path, engine=engine, options=options), model)
        ocr = tasks.OCRSystem(stages["det"], stages["cls"], stages["rec"])

    def read(image):
        r = ocr(image)
        return [line.box for line in r.lines], r.texts
    return read


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)

    pages = datasets.generate("pages", args.pages + 1, args.seed)
    warmup, pages = pages[0], pages[1:]
    with no_network():
        systems = {"rapidocr 3.10 (onnxruntime)": rapidocr_system(args.threads),
                   "edgedeploy OCRSystem (onnxruntime)": our_system("onnxruntime", args.threads),
                   "edgedeploy OCRSystem (openvino)": our_system("openvino", args.threads),
                   "edgedeploy presets.fast_ocr, det at 736 px as rapidocr": our_system(
                       "openvino", args.threads, fast=True, det_side=736),
                   "edgedeploy presets.fast_ocr (openvino: det INT8 640 px, rec BF16)": our_system(
                       "openvino", args.threads, fast=True)}
        for read in systems.values():
            read(warmup.image)
        found = {name: ([], [], []) for name in systems}  # boxes, texts, seconds per page
        for page in pages:
            for name, read in systems.items():
                t = time.perf_counter()
                boxes, texts = read(page.image)
                found[name][2].append(time.perf_counter() - t)
                found[name][0].append(boxes)
                found[name][1].append(texts)

    rows = []
    ref_secs = next(iter(found.values()))[2]  # rapidocr's
    for name, (boxes, texts, secs) in found.items():
        _, d = score_ocr(boxes, texts, pages)
        rows.append({"system": name, "line_accuracy": d["line_accuracy"], "cer": d["cer"],
                     "det_hmean": d["det_hmean"], "lines": d["lines"], "extra_lines": d["extra_lines"],
                     "s_per_page_median": statistics.median(secs), "s_per_page_min": min(secs),
                     "s_per_page_max": max(secs),
                     "speed_vs_rapidocr": statistics.median(ref_secs) / statistics.median(secs),
                     # Page by page (each page ran on every system back to back): steadier on a busy machine.
                     "speed_vs_rapidocr_paired": statistics.median(r / s for r, s in zip(ref_secs, secs))})
    versions = {d: importlib.metadata.version(d) for d in ("rapidocr", "onnxruntime", "openvino")}
    meta = {"pages": len(pages), "seed": args.seed, "threads": args.threads, "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0], "versions": versions,
            "data": f"datasets.generate('pages', {args.pages + 1}, {args.seed}); page 0 is the warm-up"}
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "ocr_vs_rapidocr.json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    lines = [
        "# End-to-end OCR: rapidocr vs edgedeploy OCRSystem",
        "",
        f"{len(pages)} generated 640x640 pages (seed {args.seed}, {rows[0]['lines']} text lines), "
        f"{args.threads} threads, one warm-up page each, pages round-robin across systems; "
        f"{os.cpu_count()} CPUs, 1-min load average at the end {meta['load_average_1min']:.1f}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}. "
        "Scoring: each true line paired one-to-one with the predicted line of highest IoU >= 0.5; "
        "line accuracy = exact text, CER over true lines; det hmean at IoU 0.5. Speed vs rapidocr: "
        "ratio of the medians, and (paired) the median over pages of rapidocr's time / the system's.",
        "",
        "| system | line accuracy | CER | det hmean | extra lines | s/page median | min | max | speed vs rapidocr | paired |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['system']} | {r['line_accuracy']:.4f} | {r['cer']:.4f} | {r['det_hmean']:.4f} | "
                     f"{r['extra_lines']} | {r['s_per_page_median']:.3f} | {r['s_per_page_min']:.3f} | "
                     f"{r['s_per_page_max']:.3f} | {r['speed_vs_rapidocr']:.2f}x | "
                     f"{r['speed_vs_rapidocr_paired']:.2f}x |")
    with atomic_write(args.out / "ocr_vs_rapidocr.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
