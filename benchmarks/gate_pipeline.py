"""The gate pipeline on generated gate videos, played live at 25 FPS: does it keep up, how fast,
how late, how accurate — measured, on this machine.

    .venv/bin/python benchmarks/gate_pipeline.py                      # 20 videos x 10 containers, ~15 min
    .venv/bin/python benchmarks/gate_pipeline.py --cpus 1             # the same pinned to 1 core
    .venv/bin/python benchmarks/gate_pipeline.py --ablation 3         # each optimisation off in turn, 3 videos
    .venv/bin/python benchmarks/gate_pipeline.py --fps-sweep 5        # accuracy vs processed FPS, 5 videos
    .venv/bin/python benchmarks/gate_pipeline.py --offline --videos 30  # accuracy, every frame, on any machine
    .venv/bin/python benchmarks/gate_pipeline.py --seeds 4,15,27      # these videos only, printed

Method: ``--videos`` gate videos (``edgedeploy.datasets.gate_video``, seeds ``--first-seed``
(300, seeds the pipeline was never tuned on) onwards, 640x360, 25 FPS, H.264) are made once into
``--cache``. Each is played in real time (frames delivered at the file's 25 FPS whether or not
the pipeline keeps up, as a camera does) through the gate pipeline (detect on a 320 px frame →
read → track/vote), 1 thread per model, with latest-frame-wins dropping; ``--engine auto``
(default) opens each model on the engine and precision measured fastest on this machine
(``edgedeploy.deploy.choice``, cached per machine and model digest; ``--fresh-choice`` measures
again first; the detector's INT8 copy is a candidate when ``edgedeploy optimize`` made it,
``--make-int8`` makes it). Reported: frames captured/processed/dropped, processed FPS, the source's delivered
FPS, end-to-end latency (capture → event sinks done) p50/p99 pooled over all frames, per-stage
latency against its share of the 40 ms frame interval (the budget report), recogniser crops
and calls, and container accuracy (a container counts when the event matched to it carries its
exact, check-digit-valid code; ``evaluate_events``).

Optimisations, each on by default and switched off by a flag: ``--no-reduced-precision`` (the
INT8/BF16 candidates of ``engine auto``: FP32 only), ``--no-skip-converged`` (read confirmed
tracks too), ``--no-batch-crops`` (one recogniser call per crop); ``--read-every N`` reads on
every N-th frame only (1: every frame). ``--ablation K`` runs K videos with all on, then with each
off in turn, in that order, and writes the ablation table. ``--cpus N`` pins the process to N
cores (``os.sched_setaffinity``) to simulate a smaller box. ``--fps-sweep K`` plays K videos
offline delivering every s-th frame (s = 1, 2, 3, ...): the accuracy at 25/s processed FPS,
evenly spread, whatever the machine; the FPS at which accuracy starts to fall is reported.
``--offline`` reads every frame of the videos as fast as it goes (no pacing, no drops): the
accuracy whatever the machine's speed or load.

Writes benchmarks/results/gate.json (defaults), gate_cpus<N>.json, gate_offline.json,
gate_ablation.json and gate_fps_sweep.json, and gate.md from all of them (override the folder with --out).

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
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from edgedeploy.datasets.gate_video import GateTruth, make_gate_video, truth_path
from edgedeploy.deploy.choice import this_machine
from edgedeploy.evaluation.gate import evaluate_events
from edgedeploy.pipelines import Pipeline, VideoSource
from edgedeploy.pipelines import budget as budgets
from edgedeploy.pipelines.gate import TrackerStage, gate_stages
from edgedeploy.zoo import cache_dir

TARGETS = {"processed_fps": 24.5, "e2e_p50_ms": 20.0, "e2e_p99_ms": 100.0}
SWITCHES = ("reduced_precision", "skip_converged", "batch_crops")


def _videos(cache: Path, seeds, containers: int) -> list[Path]:
    paths = []
    for seed in seeds:
        path = cache / f"gate_c{containers}_s{seed}.mp4"
        if not (path.is_file() and truth_path(path).is_file()):
            make_gate_video(path, containers=containers, seed=seed)
        paths.append(path)
    return paths


class Strided:
    """A video source delivering every ``step``-th frame (offline): a box processing 25/step FPS."""

    live = False

    def __init__(self, path: Path, step: int):
        self.inner, self.step = VideoSource(path), step

    @property
    def fps(self):
        return self.inner.fps / self.step if self.inner.fps else None

    def frames(self, stop=None):
        return (f for f in self.inner.frames(stop) if f.index % self.step == 0)

    def report(self):
        return self.inner.report()


def machine() -> dict:
    m = this_machine()
    isa = [f for f in m["isa"] if f.startswith(("avx512", "amx", "avx_vnni"))]
    return {"cpu": m["cpu"], "isa": isa, "cpus": os.cpu_count(), "cpus_used": sorted(os.sched_getaffinity(0)),
            "platform": platform.platform(), "python": platform.python_version(), "engines": m["engines"]}


def pin(cpus: int | None) -> str | None:
    """Pin this process to its first ``cpus`` allowed cores; what is wrong with ``cpus``, if anything."""
    if cpus is None:
        return None
    have = sorted(os.sched_getaffinity(0))
    if not 1 <= cpus <= len(have):
        return f"--cpus {cpus}: expected 1 to {len(have)} (the CPUs this process may use)"
    os.sched_setaffinity(0, have[:cpus])  # before any thread starts: every engine thread inherits it
    return None


def run(paths: list[Path], *, engine: str, realtime: bool, threads: int = 1, step: int = 1, quiet: bool = False,
        **switches) -> dict:
    """Every video through the gate pipeline; pooled figures. ``switches``: :func:`gate_stages`'s."""
    e2e, stage_ms, per_video = [], {}, []
    acc = dict(correct=0, total=0, wrong_accepted=0, rejected=0, missing=0, extra_events=0)
    totals = dict(captured=0, processed=0, dropped=0, elapsed=0.0, frames=0)
    errors, startup = [], []
    det, read, _ = gate_stages(engine=engine, det_threads=threads, rec_threads=threads, **switches)
    for path in paths:
        truth = GateTruth.load(truth_path(path))
        source = Strided(path, step) if step > 1 else VideoSource(path, realtime=realtime)
        stages = [det, read, TrackerStage()]  # models open once; a fresh tracker per video
        pipe = Pipeline(source, stages, name="gate", drop="latest" if realtime else "block")
        report = pipe.run()
        startup = startup or report.startup
        s = report.stats
        e2e.extend(pipe.metrics.e2e_ms)
        for name, values in pipe.metrics.stage_ms.items():
            stage_ms.setdefault(name, []).extend(values)
        score = evaluate_events(report.events, truth)
        for k in acc:
            acc[k] += score[k]
        errors += [{"video": path.name, **err} for err in score["errors"]]
        for k in ("captured", "processed", "dropped"):
            totals[k] += s[k]
        totals["elapsed"] += s["elapsed_s"]
        totals["frames"] += truth.frames
        per_video.append({"video": path.name, "containers": score["total"], "correct": score["correct"],
                          "extra_events": score["extra_events"], "captured": s["captured"],
                          "processed": s["processed"], "dropped": s["dropped"], "fps": s["mean_fps"],
                          "e2e_p50_ms": s["end_to_end"]["p50_ms"], "e2e_p99_ms": s["end_to_end"]["p99_ms"]})
        if not quiet:
            print(f"{path.name}: {score['correct']}/{score['total']} correct, {score['extra_events']} extra; "
                  f"{s['processed']}/{s['captured']} frames processed ({s['mean_fps']:.1f} FPS), "
                  f"e2e p50 {s['end_to_end']['p50_ms']:.0f} ms p99 {s['end_to_end']['p99_ms']:.0f} ms", file=sys.stderr)

    def pct(values, q):
        return float(np.percentile(values, q)) if len(values) else None

    budget = budgets.report(stage_ms, [det, read, TrackerStage()], fps=25.0 / step)
    lat = {"end_to_end": {"p50": pct(e2e, 50), "p99": pct(e2e, 99), "max": max(e2e) if e2e else None},
           **{name: {"p50": pct(v, 50), "p99": pct(v, 99), "mean": float(np.mean(v)) if v else None}
              for name, v in stage_ms.items()}}
    thr = {"video_fps": 25, "frames": totals["frames"], "captured": totals["captured"],
           "processed": totals["processed"], "dropped": totals["dropped"],
           "capture_fps": totals["captured"] / totals["elapsed"], "processed_fps": totals["processed"] / totals["elapsed"],
           "dropped_share": totals["dropped"] / max(totals["captured"], 1)}
    accuracy = {"containers": acc["total"], "correct": acc["correct"],
                "accuracy": acc["correct"] / acc["total"] if acc["total"] else 0.0,
                "wrong_accepted": acc["wrong_accepted"], "rejected": acc["rejected"], "missing": acc["missing"],
                "extra_events": acc["extra_events"], "errors": errors}
    return {"engine": engine, "realtime": realtime, "threads": threads, "step": step, "switches": switches,
            "videos": len(paths), "startup": startup, "accuracy": accuracy, "throughput": thr, "latency_ms": lat,
            "budget": budget, "reads": {"crops": read.reads, "calls": read.calls, "skipped": read.skipped},
            "per_video": per_video, "load_avg_1m_at_end": os.getloadavg()[0]}


def targets(r: dict) -> dict:
    """Each done-when figure of the gate: value and whether it holds."""
    a, t, lat = r["accuracy"], r["throughput"], r["latency_ms"]["end_to_end"]
    return {"processed_fps >= 24.5": t["processed_fps"] >= TARGETS["processed_fps"],
            "e2e p50 <= 20 ms": lat["p50"] <= TARGETS["e2e_p50_ms"],
            "e2e p99 <= 100 ms": lat["p99"] <= TARGETS["e2e_p99_ms"],
            "every container read exactly": a["correct"] == a["containers"],
            "0 wrong codes": a["wrong_accepted"] == 0, "0 extra events": a["extra_events"] == 0}


def ablation(paths: list[Path], *, engine: str, read_every: int) -> dict:
    """All optimisations on, then each off in turn (and reading every frame vs every 2nd), then all on
    with ONNX Runtime named instead of the measured choice; the same videos."""
    base = {k: True for k in SWITCHES} | {"read_every": read_every}
    configs = [("all on", base)] + [(f"{k} off", base | {k: False}) for k in SWITCHES]
    configs.append(("read every frame" if read_every > 1 else "read every 2nd frame",
                    base | {"read_every": 1 if read_every > 1 else 2}))
    configs = [(label, sw, engine) for label, sw in configs] + [("engine onnxruntime (no measured choice)", base,
                                                                  "onnxruntime")]
    rows = []
    for label, switches, eng in configs:
        print(f"ablation: {label}", file=sys.stderr)
        r = run(paths, engine=eng, realtime=True, quiet=True, **switches)
        rows.append({"config": label, "switches": switches, **_row(r)})
    return {"videos": [p.name for p in paths], "rows": rows}


def _row(r: dict) -> dict:
    a, t, lat = r["accuracy"], r["throughput"], r["latency_ms"]
    return {"correct": a["correct"], "containers": a["containers"], "wrong": a["wrong_accepted"],
            "extra": a["extra_events"], "processed_fps": t["processed_fps"], "dropped_share": t["dropped_share"],
            "e2e_p50": lat["end_to_end"]["p50"], "e2e_p99": lat["end_to_end"]["p99"],
            "detect_mean": lat["detect"]["mean"], "read_mean": lat["read"]["mean"], "read_p99": lat["read"]["p99"],
            "crops": r["reads"]["crops"], "calls": r["reads"]["calls"],
            "engines": ", ".join(f"{s['stage']} {s['engine']} {s['precision']}" for s in r["startup"])}


def fps_sweep(paths: list[Path], *, engine: str, steps=(1, 2, 3, 4, 5, 6, 8, 10, 12, 15), **switches) -> dict:
    """Accuracy when 25/step frames a second are processed, evenly (offline, every step-th frame)."""
    rows, startup = [], []
    for step in steps:
        r = run(paths, engine=engine, realtime=False, step=step, quiet=True, **switches)
        startup = startup or r["startup"]
        rows.append({"step": step, "fps": 25 / step, **{k: r["accuracy"][k] for k in
                     ("correct", "containers", "wrong_accepted", "extra_events")}})
        print(f"fps sweep: {25 / step:.1f} FPS: {rows[-1]['correct']}/{rows[-1]['containers']}", file=sys.stderr)
    full = [x for x in rows if x["correct"] == x["containers"] and not x["wrong_accepted"] and not x["extra_events"]]
    falls = next((x["fps"] for x in rows if x not in full), None)
    return {"videos": [p.name for p in paths], "rows": rows, "startup": startup, "switches": switches,
            "lowest_fps_all_read": min((x["fps"] for x in full), default=None), "first_fps_below_100": falls}


def _ms(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def section(title: str, r: dict) -> list[str]:
    a, t, lat = r["accuracy"], r["throughput"], r["latency_ms"]
    lines = [f"## {title}", "",
             f"{r['videos']} videos; models: " + "; ".join(f"{s['stage']} on {s['engine']} {s['precision']} ({s['how']})"
                                                        for s in r["startup"]),
             "", "| measure | value | target |", "|---|---|---|",
             f"| containers read exactly | {a['accuracy']:.2%} ({a['correct']}/{a['containers']}) | 100% |",
             f"| wrong codes accepted / rejected reads / missed | {a['wrong_accepted']} / {a['rejected']} / {a['missing']} | 0 wrong |",
             f"| events matched to no container | {a['extra_events']} | 0 |",
             f"| frames delivered by the source | {t['captured']} of {t['frames']} at {t['capture_fps']:.1f} FPS | 25 FPS |",
             f"| frames processed | {t['processed']} ({t['processed_fps']:.2f} FPS) | ≥ 24.5 FPS |",
             f"| frames dropped (latest-frame-wins) | {t['dropped']} ({t['dropped_share']:.1%}) | |",
             f"| end-to-end latency p50 / p99 / max | {_ms(lat['end_to_end']['p50'])} / {_ms(lat['end_to_end']['p99'])} / "
             f"{_ms(lat['end_to_end']['max'])} ms | p50 ≤ 20, p99 ≤ 100 ms |",
             f"| recogniser: crops read / calls / candidates skipped | {r['reads']['crops']} / {r['reads']['calls']} / "
             f"{r['reads']['skipped']} | |",
             f"| 1-minute load average at the end | {r['load_avg_1m_at_end']:.2f} | |", "",
             "Latency budget (share of the frame interval per stage):", ""]
    lines += [f"- {x}" for x in budgets.lines(r["budget"])]
    if "targets" in r:
        lines += ["", "Done-when: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in r["targets"].items())]
    lines += ["", "| video | containers | correct | extra events | processed / captured | FPS | e2e p50 / p99 ms |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {v['video']} | {v['containers']} | {v['correct']} | {v['extra_events']} | {v['processed']} / "
              f"{v['captured']} | {v['fps']:.1f} | {_ms(v['e2e_p50_ms'])} / {_ms(v['e2e_p99_ms'])} |" for v in r["per_video"]]
    if a["errors"]:
        lines += ["", "Errors:", ""] + [f"- {e['video']}: truth {e['truth']}, read {e['read']}" for e in a["errors"]]
    return lines + [""]


def markdown(out: Path) -> str:
    """gate.md from every gate_*.json present in ``out``."""
    def load(name):
        p = out / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    main = load("gate")
    main = main if main and "startup" in main else None  # written by an older version of this script
    m = (main or {}).get("machine") or next((json.loads(f.read_text())["machine"] for f in sorted(out.glob("gate_*.json"))
                                             if f.stem != "gate_ocr"), {})
    lines = ["# Gate pipeline on generated gate videos", "", "Method: " + __doc__.split("Method: ")[1].split("\n\nWrites")[0]
             .replace("\n", " "), ""]
    if m:
        lines += [f"Machine: {m['cpu']}, {m['cpus']} CPUs; ISA: {', '.join(m['isa']) or 'no AVX-512/AMX'} "
                  f"(AMX: {'yes' if any(f.startswith('amx') for f in m['isa']) else 'no'}); {m['platform']}, "
                  f"Python {m['python']}; engines {', '.join(f'{k} {v}' for k, v in m['engines'].items())}.", ""]
    if main:
        lines += section(f"Defaults ({main['command']})", main)
    for f in sorted(out.glob("gate_cpus*.json")):
        r = json.loads(f.read_text())
        lines += section(f"Pinned to {len(r['machine']['cpus_used'])} core(s) ({r['command']})", r)
    offline = load("gate_offline")
    if offline:
        lines += section(f"Every frame read offline, as fast as it goes, no drops: the accuracy; its FPS and latency "
                         f"are not the real-time figures ({offline['command']})", offline)
    sweep = load("gate_fps_sweep")
    if sweep:
        lines += ["## Accuracy against processed FPS", "",
                  f"Every s-th frame of {len(sweep['videos'])} videos processed (offline, so the figure holds on any "
                  f"machine): accuracy holds down to {sweep['lowest_fps_all_read']:.2f} FPS; first below 100% at "
                  f"{sweep['first_fps_below_100'] and format(sweep['first_fps_below_100'], '.2f')} FPS ({sweep['command']}; "
                  + ", ".join(f"{x['stage']} on {x['engine']} {x['precision']}" for x in sweep["startup"]) + ").", "",
                  "| processed FPS | read exactly | wrong codes | extra events |", "|---|---|---|---|"]
        lines += [f"| {x['fps']:.2f} | {x['correct']}/{x['containers']} | {x['wrong_accepted']} | {x['extra_events']} |"
                  for x in sweep["rows"]] + [""]
    abl = load("gate_ablation")
    if abl:
        lines += ["## Ablation: each optimisation off in turn", "",
                  f"{len(abl['videos'])} videos played live ({abl['command']}).", "",
                  "| configuration | read exactly | wrong / extra | FPS | dropped | e2e p50 / p99 ms | detect mean ms | "
                  "read mean / p99 ms | crops / rec calls | models |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {x['config']} | {x['correct']}/{x['containers']} | {x['wrong']} / {x['extra']} | "
                  f"{x['processed_fps']:.2f} | {x['dropped_share']:.1%} | {_ms(x['e2e_p50'])} / {_ms(x['e2e_p99'])} | "
                  f"{x['detect_mean']:.1f} | {x['read_mean']:.1f} / {x['read_p99']:.0f} | {x['crops']} / {x['calls']} | "
                  f"{x['engines']} |" for x in abl["rows"]] + [""]
    return "\n".join(lines)


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
    ap.add_argument("--first-seed", type=int, default=300, help="seed of the first video (300: never tuned on)")
    ap.add_argument("--engine", default="auto", help="auto (measured choice per machine and model) or an engine")
    ap.add_argument("--fresh-choice", action="store_true", help="forget cached engine choices: measure them again")
    ap.add_argument("--make-int8", action="store_true",
                    help="make the detector's INT8 copy first if it is not cached (edgedeploy optimize, minutes)")
    ap.add_argument("--threads", type=int, default=1, help="threads per model")
    ap.add_argument("--cpus", type=int, help="pin the pipeline to this many cores (a smaller box)")
    ap.add_argument("--no-reduced-precision", dest="reduced_precision", action="store_false")
    ap.add_argument("--no-skip-converged", dest="skip_converged", action="store_false")
    ap.add_argument("--no-batch-crops", dest="batch_crops", action="store_false")
    ap.add_argument("--read-every", type=int, default=1, help="read on every N-th frame (0: as the budget allows)")
    ap.add_argument("--ablation", type=int, metavar="K", help="run the ablation on K videos instead")
    ap.add_argument("--fps-sweep", type=int, metavar="K", help="run the accuracy-vs-FPS sweep on K videos instead")
    ap.add_argument("--offline", action="store_true", help="process every frame (no real-time pacing, no drops)")
    ap.add_argument("--cache", type=Path, default=cache_dir() / "gate-videos")
    ap.add_argument("--seeds", help="only these video seeds, e.g. 4,15,27 (a quick look: results are printed, "
                                    "written only with --out)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    ap.add_argument("--ocr", type=int, metavar="PAGES", help="run the OCR-pipeline comparison on PAGES pages instead")
    ap.add_argument("--rounds", type=int, default=3, help="--ocr: rounds per system")
    ap.add_argument("--ocr-threads", type=int, default=2, help="--ocr: rapidocr's ORT threads")
    args = ap.parse_args()
    if problem := pin(args.cpus):
        ap.error(problem)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    if args.out is None and (seeds is None or args.ocr):
        args.out = Path(__file__).parent / "results"
    if args.ocr:
        result = ocr_run(args.ocr, 0, args.ocr_threads, args.rounds)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gate_ocr.json").write_text(json.dumps(result, indent=1, default=str))
        (args.out / "gate_ocr.md").write_text(ocr_markdown(result))
        print(ocr_markdown(result))
        return
    if args.fresh_choice:
        shutil.rmtree(cache_dir() / "engine-choice", ignore_errors=True)
    if args.make_int8:
        from edgedeploy.presets import int8_model

        int8_model("ppocrv6-det", engine="openvino")  # engine auto measures it when it is cached
    args.cache.mkdir(parents=True, exist_ok=True)
    count = args.ablation or args.fps_sweep or args.videos
    paths = _videos(args.cache, seeds or range(args.first_seed, args.first_seed + count), args.containers)
    switches = dict(reduced_precision=args.reduced_precision, skip_converged=args.skip_converged,
                    batch_crops=args.batch_crops, read_every=args.read_every)
    command = "benchmarks/gate_pipeline.py " + " ".join(sys.argv[1:])
    if args.ablation:
        result, stem = ablation(paths, engine=args.engine, read_every=args.read_every), "gate_ablation"
    elif args.fps_sweep:
        result, stem = fps_sweep(paths, engine=args.engine, **switches), "gate_fps_sweep"
    else:
        result = run(paths, engine=args.engine, realtime=not args.offline, threads=args.threads, **switches)
        if not args.offline:  # offline, FPS and latency are how fast it goes, not whether it keeps up
            result["targets"] = targets(result)
        stem = "gate_offline" if args.offline else f"gate_cpus{args.cpus}" if args.cpus else "gate"
    result.update(command=command.strip(), machine=machine(), seeds=[int(p.stem.split("_s")[1]) for p in paths])
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))
        (args.out / "gate.md").write_text(markdown(args.out))
    if "accuracy" in result:
        print("\n".join(section(stem, result)))
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1, default=str))


if __name__ == "__main__":
    main()
