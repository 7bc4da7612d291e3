"""`edgedeploy pipeline CONFIG` (run a video-analytics pipeline) and `edgedeploy gate-video OUT`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.output import console, emit_json, err_console, fmt_ms, table
from edgedeploy.cli.params import check_input_file, check_output_path


def _live_line(s: dict) -> str:
    e2e = s["end_to_end"]
    stages = "  ".join(f"{name} {fmt_ms(v['p50_ms'])}" for name, v in s["stages"].items())
    return (f"{s['captured']} frames in, {s['processed']} processed, {s['dropped']} dropped | "
            f"{s['fps']:.1f} FPS | e2e p50 {fmt_ms(e2e['p50_ms'])} p99 {fmt_ms(e2e['p99_ms'])} ms | "
            f"{stages} ms | {s['events']} events")


def pipeline(config: Path = typer.Argument(..., help="Pipeline YAML (see examples/pipelines/)."),
             source: str | None = typer.Option(None, "--source", "-s", help="Replace the config's source url."),
             max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
             duration: float | None = typer.Option(None, "--duration", min=0.001,
                                                   help="Stop after this many seconds."),
             allow_python: list[str] = typer.Option([], "--allow-python", metavar="MODULE",
                                                    help="Let `python` stages run code from this module (and its "
                                                         "submodules); repeat for more. Off by default."),
             json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Run a pipeline: source → stages (concurrent, bounded queues, latest-frame-wins) → sinks.

    Prints live FPS, latency and dropped frames every 2 s, then the totals and each sink's report.
    """
    from edgedeploy.pipelines.budget import lines as budget_lines
    from edgedeploy.pipelines.config import load_config, run_config

    config = check_input_file(config, flag="CONFIG")
    loaded = load_config(config, source=source, allow_python=allow_python)
    for i, sink in enumerate(loaded.sinks):  # sink files: writable before any frame
        if isinstance(sink, dict) and sink.get("type") in ("jsonl", "video") and sink.get("path"):
            check_output_path(Path(str(sink["path"])), flag=f"{config}: sinks[{i}].path")

    def live(stats: dict) -> None:
        if not json_:
            err_console.print(_live_line(stats), highlight=False)

    report = run_config(config, source=source, max_frames=max_frames, duration=duration, on_stats=live,
                        allow_python=allow_python, on_start=None if json_ else lambda startup: [
                            err_console.print(f"model {o['stage']}: {o['engine']} {o['precision']}: {o['how']}",
                                              highlight=False) for o in startup])
    if json_:
        return emit_json(report.to_dict())
    s = report.stats
    rows = [["frames captured / processed / dropped", f"{s['captured']} / {s['processed']} / {s['dropped']}"],
            ["drop policy", s["drop_policy"]],
            ["FPS processed (mean) / delivered by source", f"{s['mean_fps']:.1f} / {s['capture_fps']:.1f}"],
            ["end-to-end latency p50 / p99 (ms)", f"{fmt_ms(s['end_to_end']['p50_ms'])} / {fmt_ms(s['end_to_end']['p99_ms'])}"]]
    rows += [[f"stage {n} p50 / p99 (ms)", f"{fmt_ms(v['p50_ms'])} / {fmt_ms(v['p99_ms'])}"] for n, v in s["stages"].items()]
    rows += [[f"model {o['stage']}", f"{o['engine']} {o['precision']}"] for o in report.startup]
    rows += [["latency budget", line] for line in budget_lines(s["budget"])]
    rows += [["events", str(s["events"])], ["stopped by", report.stopped_by],
             ["source", ", ".join(f"{k}={v}" for k, v in report.source.items() if k != "errors")]]
    rows += [[f"sink {name}", ", ".join(f"{k}={v}" for k, v in r.items() if k != "dropped_events")]
             for name, r in report.sinks.items()]
    console.print(table(f"pipeline {s['pipeline']}", ["measure", "value"], rows))
    for err in report.source.get("errors", [])[-5:]:
        err_console.print(f"source: {err}", highlight=False)
    containers = [e for e in report.events if e.get("type") == "container"]
    if containers:
        console.print(table("containers", ["code", "confidence", "frames", "snapshot"],
                            [[e["code"] or "(unreadable)", f"{e['confidence']:.2f}",
                              f"{e['first_frame']}-{e['last_frame']}", e.get("snapshot") or ""] for e in containers]))


def gate_video(out: Path = typer.Argument(..., help="Video to write (.mp4/.mkv/.ts); truth goes to OUT.json."),
               containers: int = typer.Option(5, "--containers", "-n", min=1, max=1000,
                                              help="Containers passing the gate."),
               seed: int = typer.Option(0, "--seed", help="The same seed makes the same video."),
               json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Generate a gate-camera video of containers passing, with their ISO 6346 codes as truth."""
    from dataclasses import asdict

    from edgedeploy.datasets.gate_video import make_gate_video, truth_path

    out = check_output_path(out, flag="OUT")
    check_output_path(truth_path(out), flag="OUT (its truth file)")
    truth = make_gate_video(out, containers=containers, seed=seed)
    if json_:
        return emit_json({"video": str(out), "truth": str(truth_path(out)), **asdict(truth)})
    console.print(table(f"{out} ({truth.frames} frames at {truth.fps} FPS, {truth.width}x{truth.height}); "
                        f"truth in {truth_path(out)}", ["code", "frames in view", "code in view"],
                        [[c.code, f"{c.first_frame}-{c.last_frame}", f"{c.code_first}-{c.code_last}"]
                         for c in truth.containers]))
