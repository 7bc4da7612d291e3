"""The gate pipeline on generated gate videos, played live at 25 FPS: does it keep up, how fast,
how late, how accurate — measured, on this machine.

    .venv/bin/python benchmarks/gate_pipeline.py                      # 20 videos x 10 containers, ~10 min
    .venv/bin/python benchmarks/gate_pipeline.py --videos 2 --containers 4   # a quick look
    .venv/bin/python benchmarks/gate_pipeline.py --seeds 4,15,27             # these videos only, printed

Method: ``--videos`` gate videos (``edgedeploy.datasets.gate_video``, seeds 0..N-1, 640x360,
25 FPS, H.264) are made once into ``--cache``. Each is played in real time (frames delivered at
the file's 25 FPS whether or not the pipeline keeps up, as a camera does) through the gate
pipeline (detect on a 320 px frame → read → track/vote), ONNX Runtime, 1 thread per model, with
latest-frame-wins dropping. Reported: frames captured/processed/dropped, processed FPS, the
source's delivered FPS, end-to-end latency (capture → event sinks done) p50/p99 pooled over all
frames, per-stage latency, and container accuracy (a container counts when the event matched
to it carries its exact, check-digit-valid code; ``evaluate_events``).

Writes benchmarks/results/gate.md and gate.json (override with --out).

``--ocr PAGES``: instead, the OCR system as a pipeline (det → cls → rec stages, one thread each,
concurrent: det works on page n+1 while rec reads page n) against the rapidocr package's own
pipeline on the same generated pages, side by side. rapidocr is set up, and every system scored,
exactly as in benchmarks/ocr_vs_rapidocr.py (imported from it, not copied): ``score_ocr``, each
true line paired with the predicted line of highest IoU >= 0.5. Systems take turns over
``--rounds`` rounds (each round: every system reads all pages once); reported: pages per second
over the whole batch (wall clock, first page in to last result out), best and median round.
Writes gate_ocr.md and gate_ocr.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgedeploy.pipelines import Pipeline, VideoSource
from edgedeploy.datasets.gate_video import GateTruth, make_gate_video, truth_path
from edgedeploy.evaluation.gate import evaluate_events
from edgedeploy.pipelines.gate import gate_stages


def _videos(cache: Path, seeds, containers: int) -> list[Path]:
    paths = []
    for seed in seeds:
        path = cache / f"gate_c{containers}_s{seed}.mp4"
        if not (path.is_file() and truth_path(path).is_file()):
            make_gate_video(path, containers=containers, seed=seed)
        paths.append(path)
    return paths


def run(videos: int, containers: int, cache: Path, engine: str, realtime: bool, seeds: list[int] | None = None) -> dict:
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    paths = _videos(cache, seeds if seeds is not None else range(videos), containers)
    print(f"{len(paths)} videos ready in {time.perf_counter() - t:.0f} s ({cache})", file=sys.stderr)
    e2e, stages, per_video, preds_truth = [], {}, [], {"events": 0, "extra": 0}
    totals = dict(captured=0, processed=0, dropped=0, elapsed=0.0, frames=0)
    all_errors, correct, total, wrong, rejected, missing = [], 0, 0, 0, 0, 0
    for path in paths:
        truth = GateTruth.load(truth_path(path))
        pipe = Pipeline(VideoSource(path, realtime=realtime), gate_stages(engine=engine), name="gate",
                        drop="latest" if realtime else "block")
        report = pipe.run()
        s = report.stats
        e2e.extend(pipe.metrics.e2e_ms)
        for name, values in pipe.metrics.stage_ms.items():
            stages.setdefault(name, []).extend(values)
        score = evaluate_events(report.events, truth)
        correct, total = correct + score["correct"], total + score["total"]
        wrong, rejected, missing = wrong + score["wrong_accepted"], rejected + score["rejected"], missing + score["missing"]
        preds_truth["extra"] += score["extra_events"]
        all_errors += [{"video": path.name, **err} for err in score["errors"]]
        for k in ("captured", "processed", "dropped"):
            totals[k] += s[k]
        totals["elapsed"] += s["elapsed_s"]
        totals["frames"] += truth.frames
        per_video.append({"video": path.name, "containers": score["total"], "correct": score["correct"],
                          "extra_events": score["extra_events"], "captured": s["captured"],
                          "processed": s["processed"], "dropped": s["dropped"], "fps": s["mean_fps"],
                          "e2e_p50_ms": s["end_to_end"]["p50_ms"], "e2e_p99_ms": s["end_to_end"]["p99_ms"]})
        print(f"{path.name}: {score['correct']}/{score['total']} correct, {score['extra_events']} extra; "
              f"{s['processed']}/{s['captured']} frames processed ({s['mean_fps']:.1f} FPS), "
              f"e2e p50 {s['end_to_end']['p50_ms']:.0f} ms p99 {s['end_to_end']['p99_ms']:.0f} ms", file=sys.stderr)

    def pct(values, q):
        return float(np.percentile(values, q)) if len(values) else None

    return {
        "method": __doc__.split("Method: ")[1].split("\n\nWrites")[0].replace("\n", " "),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_1m_at_end": os.getloadavg()[0]},
        "engine": engine, "realtime": realtime, "videos": len(paths), "containers_per_video": containers,
        "accuracy": {"containers": total, "correct": correct, "accuracy": correct / total if total else 0.0,
                     "wrong_accepted": wrong, "rejected": rejected, "missing": missing,
                     "extra_events": preds_truth["extra"], "errors": all_errors},
        "throughput": {"video_fps": 25, "frames": totals["frames"], "captured": totals["captured"],
                       "processed": totals["processed"], "dropped": totals["dropped"],
                       "capture_fps": totals["captured"] / totals["elapsed"],
                       "processed_fps": totals["processed"] / totals["elapsed"],
                       "dropped_share": totals["dropped"] / max(totals["captured"], 1)},
        "latency_ms": {"end_to_end": {"p50": pct(e2e, 50), "p99": pct(e2e, 99), "max": max(e2e) if e2e else None},
                       **{name: {"p50": pct(v, 50), "p99": pct(v, 99)} for name, v in stages.items()}},
        "per_video": per_video,
    }


def markdown(r: dict) -> str:
    a, t, lat = r["accuracy"], r["throughput"], r["latency_ms"]
    lines = [
        "# Gate pipeline on generated gate videos",
        "",
        f"Method: {r['method']}",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, {r['machine']['platform']}, Python {r['machine']['python']}; "
        f"1-minute load average at the end: {r['machine']['load_avg_1m_at_end']:.1f} (other work shares these cores).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| container accuracy | {a['accuracy']:.2%} ({a['correct']}/{a['containers']}) | ≥ 99.7% |",
        f"| wrong codes accepted / rejected reads / missed | {a['wrong_accepted']} / {a['rejected']} / {a['missing']} | |",
        f"| events matched to no container | {a['extra_events']} | |",
        f"| frames delivered by the source | {t['captured']} of {t['frames']} at {t['capture_fps']:.1f} FPS | 25 FPS |",
        f"| frames processed | {t['processed']} ({t['processed_fps']:.1f} FPS) | |",
        f"| frames dropped (latest-frame-wins) | {t['dropped']} ({t['dropped_share']:.0%}) | |",
        f"| end-to-end latency p50 / p99 / max | {lat['end_to_end']['p50']:.0f} / {lat['end_to_end']['p99']:.0f} / "
        f"{lat['end_to_end']['max']:.0f} ms | bounded |",
    ]
    for name, v in lat.items():
        if name != "end_to_end":
            lines.append(f"| stage {name} p50 / p99 | {v['p50']:.1f} / {v['p99']:.1f} ms | |")
    lines += ["", "| video | containers | correct | extra events | processed / captured | FPS | e2e p50 / p99 ms |",
              "|---|---|---|---|---|---|---|"]
    for v in r["per_video"]:
        lines.append(f"| {v['video']} | {v['containers']} | {v['correct']} | {v['extra_events']} | "
                     f"{v['processed']} / {v['captured']} | {v['fps']:.1f} | {v['e2e_p50_ms']:.0f} / {v['e2e_p99_ms']:.0f} |")
    if a["errors"]:
        lines += ["", "Errors:", ""]
        lines += [f"- {e['video']}: truth {e['truth']}, read {e['read']}" for e in a["errors"]]
    return "\n".join(lines) + "\n"


def ocr_run(n_pages: int, seed: int, threads: int, rounds: int) -> dict:
    """rapidocr's pipeline vs the OCR stages in a Pipeline, on the same pages; see the docstring."""
    import importlib.metadata
    import statistics

    from edgedeploy import datasets
    from edgedeploy.evaluation import score_ocr
    from edgedeploy.pipelines import ArraySource
    from edgedeploy.pipelines.ocr import ocr_stages

    sys.path.insert(0, str(Path(__file__).parent))
    from ocr_vs_rapidocr import no_network, rapidocr_system

    pages = datasets.generate("pages", n_pages + 1, seed)
    warmup, pages = pages[0], pages[1:]
    images = [p.image for p in pages]

    def rapid():
        read = rapidocr_system(threads)
        read(warmup.image)

        def run():
            out = [read(img) for img in images]
            return [b for b, _ in out], [t for _, t in out], None
        return run

    def ours(engine):
        stages = ocr_stages(engine=engine, threads=1)
        frame = next(ArraySource([warmup.image]).frames())
        for st in stages:  # models load once; one warm-up page
            st.open(None)
            frame = st.process(frame)

        def run():
            pipe = Pipeline(ArraySource(images), stages, name=f"ocr-{engine}", queue_size=2, drop="block")
            report = pipe.run()
            found = {e["frame"]: e for e in report.events}
            boxes = [[np.asarray(ln["box"], np.float32) for ln in found[i]["lines"]] for i in range(len(images))]
            texts = [[ln["text"] for ln in found[i]["lines"]] for i in range(len(images))]
            return boxes, texts, report.stats
        return run

    systems = {f"rapidocr {importlib.metadata.version('rapidocr')} pipeline (onnxruntime, {threads} threads)": rapid,
               "edgedeploy OCR pipeline (onnxruntime, 3 stages x 1 thread)": lambda: ours("onnxruntime"),
               "edgedeploy OCR pipeline (openvino, 3 stages x 1 thread)": lambda: ours("openvino")}
    with no_network():
        runners = {name: make() for name, make in systems.items()}
        times: dict[str, list[float]] = {name: [] for name in systems}
        results, stage_stats = {}, {}
        for _ in range(rounds):
            for name, run in runners.items():
                t = time.perf_counter()
                boxes, texts, stats = run()
                times[name].append(time.perf_counter() - t)
                results[name] = (boxes, texts)
                if stats:
                    stage_stats[name] = {k: v["p50_ms"] for k, v in stats["stages"].items()}
    rows = []
    for name in systems:
        _, d = score_ocr(*results[name], pages)
        best, med = min(times[name]), statistics.median(times[name])
        rows.append({"system": name, "line_accuracy": d["line_accuracy"], "cer": d["cer"], "det_hmean": d["det_hmean"],
                     "lines": d["lines"], "pages_per_s_best": len(pages) / best, "pages_per_s_median": len(pages) / med,
                     "s_per_page_best": best / len(pages), "stage_p50_ms": stage_stats.get(name)})
    ref = rows[0]["pages_per_s_best"]
    for r in rows:
        r["speedup_vs_rapidocr"] = r["pages_per_s_best"] / ref
    return {"method": __doc__.split("``--ocr PAGES``: ")[1].split("\nWrites")[0].replace("\n", " "),
            "pages": len(pages), "seed": seed, "threads": threads, "rounds": rounds, "cpus": os.cpu_count(),
            "load_avg_1m_at_end": os.getloadavg()[0], "rows": rows}


def ocr_markdown(r: dict) -> str:
    lines = ["# The OCR system as a pipeline vs rapidocr's pipeline", "", f"Method: {r['method']}", "",
             f"{r['pages']} generated 640x640 pages (seed {r['seed']}, {r['rows'][0]['lines']} lines), {r['rounds']} rounds; "
             f"{r['cpus']} CPUs, 1-minute load average at the end {r['load_avg_1m_at_end']:.1f} (shared machine).", "",
             "| system | line accuracy | CER | det hmean | pages/s (best) | pages/s (median) | s/page (best) | vs rapidocr |",
             "|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        lines.append(f"| {x['system']} | {x['line_accuracy']:.4f} | {x['cer']:.4f} | {x['det_hmean']:.4f} | "
                     f"{x['pages_per_s_best']:.2f} | {x['pages_per_s_median']:.2f} | {x['s_per_page_best']:.3f} | "
                     f"{x['speedup_vs_rapidocr']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--containers", type=int, default=10, help="containers per video")
    ap.add_argument("--engine", default="onnxruntime")
    ap.add_argument("--offline", action="store_true", help="process every frame (no real-time pacing, no drops)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("EDGEDEPLOY_CACHE", Path.home() / ".cache/edgedeploy"))
                    / "gate-videos")
    ap.add_argument("--seeds", help="only these video seeds, e.g. 4,15,27 (a quick look: results are printed, "
                                    "written only with --out)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    ap.add_argument("--ocr", type=int, metavar="PAGES", help="run the OCR-pipeline comparison on PAGES pages instead")
    ap.add_argument("--rounds", type=int, default=3, help="--ocr: rounds per system")
    ap.add_argument("--threads", type=int, default=2, help="--ocr: rapidocr's ORT threads")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    if args.out is None and (seeds is None or args.ocr):
        args.out = Path(__file__).parent / "results"
    if args.ocr:
        result = ocr_run(args.ocr, 0, args.threads, args.rounds)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gate_ocr.json").write_text(json.dumps(result, indent=1, default=str))
        (args.out / "gate_ocr.md").write_text(ocr_markdown(result))
        print(ocr_markdown(result))
        return
    result = run(args.videos, args.containers, args.cache, args.engine, not args.offline, seeds)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = "gate" if not args.offline else "gate_offline"
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))
        (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
