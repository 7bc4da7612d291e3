"""`edgedeploy bench`: each configuration in a fresh process, against the engines' untuned defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.model import MODEL_HELP
from edgedeploy.cli.output import console, emit_json, phases
from edgedeploy.cli.params import RuntimePrecision, check_fits, check_output_path, threads_option
from edgedeploy.errors import VerdictError
from edgedeploy.vocab import Engine


def bench(models: list[str] = typer.Argument(..., help=MODEL_HELP + " Several may be given."),
          engine: list[Engine] = typer.Option(None, "--engine", help="Engines to run (repeatable; default: all installed)."),
          precision: list[RuntimePrecision] = typer.Option(["fp32"], "--precision", help="Precisions (repeatable)."),
          threads: list[int] = threads_option(help="Intra-op threads (repeatable; default: the engine's)."),
          shape: list[str] = typer.Option(None, "--shape", help="Input size, HxW or full NCHW (repeatable), e.g. 640x640."),
          batch: int = typer.Option(1, min=1, help="Batch size (sets the first dimension)."),
          runs: int = typer.Option(50, min=1, help="Timed runs per configuration (fewer if --time-budget runs out)."),
          time_budget: float = typer.Option(10.0, "--time-budget", min=0.01, help="Seconds of timed runs at most."),
          warmup: int = typer.Option(3, min=0, help="Untimed runs after the first inference."),
          concurrency: int = typer.Option(1, min=1, help="Threads issuing requests at once, for throughput."),
          anchors: bool = typer.Option(True, "--anchors/--no-anchors", help="Also run each engine untuned, as users would."),
          dataset: str = typer.Option(None, help="Measure accuracy on this generated data set ('auto': the model's task)."),
          samples: int = typer.Option(20, min=1, help="Samples of --dataset."),
          timeout: float = typer.Option(300.0, min=1, help="Seconds before a configuration's worker is stopped."),
          target: str = typer.Option(None, "--target", help="Edge target (rk3588, raspberry-pi-5, jetson-orin-nano, "
                                     "...): run its engines here and show its estimated figures beside them."),
          json_: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
          csv: Path = typer.Option(None, help="Also write the rows to this CSV file."),
          markdown: Path = typer.Option(None, help="Also write a Markdown table to this file."),
          json_file: Path = typer.Option(None, "--json-file", help="Also write the JSON to this file."),
          plot: Path = typer.Option(None, help="Also draw latency vs memory (bubble = size) into this PNG.")):
    """Latency (p50/p90/p99), cold start, throughput, model memory, power, size and accuracy of MODEL(s).

    Every configuration runs in its own fresh process. Anchors — ORT, OpenVINO and Paddle
    Inference opened with their defaults, as users run them — are measured in the same run, and
    each row's speed-up is stated against the model's native-engine anchor. A configuration that
    fails becomes a failed row with the reason; the rest of the table still prints.
    """
    from edgedeploy.benchmarking import plan, report, run_bench

    for flag, path in (("--csv", csv), ("--markdown", markdown), ("--json-file", json_file), ("--plot", plot)):
        check_output_path(path, flag=flag)
    engine_names = [str(e) for e in engine or []] or None
    chosen = None
    if target:
        from edgedeploy import engines as engine_registry
        from edgedeploy.targets.select import choose, here_engines

        chosen = choose(target, precisions=[str(p) for p in precision or []], engines=engine_names or ())
        if chosen.key != "local":
            engine_names = engine_names or here_engines(chosen, [e for e in engine_registry.ENGINES
                                                                  if engine_registry.available(e)])
            anchors = False  # the anchors are this machine's engines, not the target's
    configs, skipped = plan(models, engine_names=engine_names,
                            precisions=[str(p) for p in precision or []] or ["fp32"],
                            threads=threads or [None], shapes=shape or [], batch=batch, anchors=anchors,
                            runs=runs, time_budget_s=time_budget, warmup=warmup, concurrency=concurrency,
                            dataset=dataset, samples=samples, timeout_s=timeout)
    for cfg in configs:  # each worker allocates its input: refuse one that cannot fit before starting any
        check_fits(cfg.shape, what=f"{cfg.model} at {cfg.shape_str}")
    with phases("bench", not json_) as say:
        def step(i: int, total: int, cfg) -> None:
            say(f"{cfg.model} {cfg.shape_str} {cfg.scheme}" if cfg else "done", i, total)

        results = run_bench(configs, progress=step)
    from edgedeploy.hardware.isa import detect

    peak = detect()  # the CPU's estimated peak per precision, for each row's GFLOP/s and share of it
    report.write(results, skipped, json_path=json_file, csv_path=csv, markdown_path=markdown, plot_path=plot,
                 peak=peak)
    from edgedeploy.optimize.lineage import lines as lineage_lines

    derived_lines, derived = lineage_lines(models, results)  # B made from A by optimize: B against A
    if json_:
        import json

        emit_json({**json.loads(report.to_json(results, skipped, peak=peak)), "derived": derived,
                   **({"target": _target_figures(chosen, configs)} if chosen else {})})
    else:
        console.print(report.rich_table(results, peak=peak))
        for line in derived_lines:
            console.print(line, markup=False, highlight=False)
        for line in report.skipped_lines(skipped):
            console.print(line, markup=False, highlight=False)
        if chosen:
            print_target_figures(_target_figures(chosen, configs))
        for path in (json_file, csv, markdown, plot):
            if path:
                console.print(f"wrote {path}", markup=False, highlight=False)
    if results and not any(r.ok for r in results):
        raise VerdictError(f"every one of the {len(results)} configurations failed (reasons in the table)")


def _target_figures(t, configs) -> dict:
    """The target's estimated figures for each benchmarked model and precision, labelled estimated."""
    from edgedeploy.targets.select import estimated, not_the_targets

    seen: dict[str, tuple] = {}
    for cfg in configs:
        seen.setdefault(cfg.model, cfg.shape)
    precisions = list(dict.fromkeys(str(c.precision) for c in configs)) or ["fp32"]
    rows = [r for model, shape in seen.items() for r in estimated(t, model, shape=shape, precisions=precisions)]
    return {"key": t.key, "isa": t.isa, "note": not_the_targets(t), "estimated": rows}


def print_target_figures(fig: dict) -> None:
    from edgedeploy.cli.output import table

    if fig["note"]:
        console.print(fig["note"], markup=False, highlight=False)
    if fig["estimated"]:
        console.print(table(f"{fig['key']}: estimated, not measured", ["model", "precision", "unit", "latency (estimated)",
                                                                      "band"],
                            [[r["model"], r["precision"], r["unit"], f"{r['latency_ms']:.2f} ms",
                              f"{r['latency_low_ms']:.2f}-{r['latency_high_ms']:.2f} ms"] for r in fig["estimated"]]))
