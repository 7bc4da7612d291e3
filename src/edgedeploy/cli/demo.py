"""`edgedeploy demo`: the main job — fetch the zoo, run every model on every engine, compare."""

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
         json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Fetch the zoo and run each model on every installed engine: do the outputs agree, and how fast is each?

    The reference is the model's native engine (ONNX Runtime for ONNX, Paddle Inference for
    Paddle models); agreement means every output element within 1e-4 + 1e-3 x max|reference|.
    Latency is the median of --runs warm runs in one process: a quick figure, not a benchmark.
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
    failed = [r for r in rows if r.status in ("differs",)]
    if json_:
        emit_json([r.to_dict() for r in rows])
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
    if failed:
        raise typer.Exit(1)


def _status(s: str) -> str:
    return {"ok": "[green]agrees[/]", "differs": "[red]DIFFERS[/]", "failed": "[yellow]failed[/]", "n/a": "n/a"}[s]
