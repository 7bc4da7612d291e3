"""`edgedeploy demo`: the main job — fetch the zoo, run every model on every engine, compare, and show
the best untuned engine next to edgedeploy's choice for each model, measured side by side."""

from __future__ import annotations

import typer

from edgedeploy import engines, parity, zoo
from edgedeploy.cli.output import console, emit_json, fmt_ms, progress, table
from edgedeploy.cli.params import threads_option
from edgedeploy.vocab import Engine


def demo(models: list[str] = typer.Option(None, "--model", help="Zoo models to run (default: all)."),
         engine: list[Engine] = typer.Option(None, "--engine", help="Engines to compare (default: all installed)."),
         threads: int = threads_option(),
         runs: int = typer.Option(5, min=1, help="Warm runs timed per model and engine."),
         versus: bool = typer.Option(True, "--versus/--no-versus",
                                     help="Also measure the best untuned engine vs edgedeploy's choice per model."),
         rounds: int = typer.Option(3, min=1, help="Interleaved rounds of the side-by-side measurement."),
         json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Fetch the zoo and run each model on every installed engine: do the outputs agree, and how fast is each?

    The reference is the model's native engine (ONNX Runtime for ONNX, Paddle Inference for
    Paddle models); agreement means every output element within 1e-4 + 1e-3 x max|reference|.
    Latency is the median of --runs warm runs in one process: a quick figure, not a benchmark.

    Then, per model, every engine's own default (the anchors) and edgedeploy's run-time choices
    (FP32 with --threads, BF16 on OpenVINO where the CPU has it natively) are timed side by side,
    interleaved in one process; edgedeploy's choice is taken only when its p50 95% interval lies
    entirely below the best anchor's, else it is the anchor (1.00x): never behind it.
    """
    names = models or zoo.names()
    for n in names:
        zoo.entry(n)
    chosen = [str(e) for e in engine or []] or [e for e in engines.ENGINES if engines.available(e)]
    for e in chosen:
        engines.spec(e)
    rows = []
    with progress(not json_) as bar:
        task = bar.add_task("fetching", total=len(names))
        for n in names:
            zoo.fetch(n)
            bar.advance(task)
        task = bar.add_task("comparing engines", total=len(names))
        for n in names:
            bar.update(task, description=f"comparing engines: {n}")
            rows += parity.check_model(n, chosen, runs=runs, threads=threads)
            bar.advance(task)
        compared = []
        if versus:
            from edgedeploy.deploy.tuner import usable_cores
            from edgedeploy.deploy.versus import compare

            task = bar.add_task("best untuned engine vs edgedeploy", total=len(names))
            for n in names:
                bar.update(task, description=f"side by side: {n}")
                compared.append(compare(n, threads=threads or usable_cores(), rounds=rounds))
                bar.advance(task)
    failed = [r for r in rows if r.status in ("differs",)]
    if json_:
        emit_json({"parity": [r.to_dict() for r in rows], "versus": [v.to_dict() for v in compared]})
    else:
        notes: list[str] = []

        def note(r) -> str:
            if r.reason in ("", "reference") or r.status == "n/a":
                return r.reason
            notes.append(r.reason)
            return f"[{len(notes)}]"

        console.print(table(
            "engines agree? (reference = the model's native engine)",
            ["model", "engine", "status", "max |diff|", "tolerance", "latency ms", "load ms", "note"],
            [[r.model, r.engine, _status(r.status), "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.1e}",
              "-" if r.tolerance is None else f"{r.tolerance:.1e}", fmt_ms(r.latency_ms), fmt_ms(r.load_ms),
              note(r)] for r in rows],
            justify_right=("max |diff|", "tolerance", "latency ms", "load ms")))
        for i, text in enumerate(notes, 1):
            console.print(f"[{i}] {text}", markup=False, highlight=False)
        console.print("latency: median of warm runs, one process, quick figure; `edgedeploy bench` measures properly.")
        if compared:
            _print_versus(compared, rounds)
    if failed:
        raise typer.Exit(1)


def _status(s: str) -> str:
    return {"ok": "[green]agrees[/]", "differs": "[red]DIFFERS[/]", "failed": "[yellow]failed[/]", "n/a": "n/a"}[s]


def _print_versus(compared, rounds: int) -> None:
    from edgedeploy.hardware.isa import detect
    from edgedeploy.optimize.latency import method

    def cell(v, label):
        lat = v.latency[label]
        mem = "-" if lat.memory_mb is None else f"{lat.memory_mb:.0f} MiB"
        return f"{label}: {fmt_ms(lat.median_ms)} ms, {mem}"

    console.print(table(
        f"best untuned engine vs edgedeploy's choice on this machine ({detect().kind})",
        ["model", "input", "best untuned engine", "edgedeploy's choice", "ratio", "fastest tuned (if not chosen)"],
        [[v.model, "x".join(map(str, v.shape)), cell(v, v.anchor), cell(v, v.choice), f"{v.ratio:.2f}x",
          "" if v.choice == v.fastest else cell(v, v.fastest) + " (within the noise band)"]
         for v in compared], justify_right=("ratio",)))
    console.print(f"side by side: {method(rounds=rounds, threads=compared[0].threads)}; memory: resident memory each session added. The choice is "
                  "taken only when its p50 95% interval lies entirely below the best anchor's (else the anchor, 1.00x). "
                  "Accuracy: the table above (agreement with FP32). INT8/pruned models: `edgedeploy optimize`/`deploy`; "
                  "the per-CPU table: benchmarks/results/perf-<cpu kind>.md.", markup=False, highlight=False)
