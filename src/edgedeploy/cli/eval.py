"""`edgedeploy eval`: accuracy of a model on a real task, on generated or saved data."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from edgedeploy.cli.model import MODEL_HELP, engine_options
from edgedeploy.cli.output import console, emit_json, fmt_ms, progress, table
from edgedeploy.cli.params import threads_option
from edgedeploy.vocab import Engine


class EvalTask(StrEnum):
    """The keys of ``edgedeploy.evaluation.runner.TASKS`` (written out: importing the runner costs
    ~0.3 s at every CLI start; tests/cli checks the two agree)."""

    DET = "det"
    REC = "rec"
    CLS = "cls"
    ORIENTATION = "orientation"
    LAYOUT = "layout"
    OCR = "ocr"
    CONTAINER = "container"


def eval_(model: str = typer.Argument(..., help=MODEL_HELP + " For ocr/container: ocr, ppocrv6 or ppocrv4-paddle."),
          task: EvalTask = typer.Option(None, help="The task to score (default: the zoo model's own task)."),
          engine: Engine = typer.Option(Engine.AUTO, help="Engine to run on (auto: the model's native one)."),
          threads: int = threads_option(),
          data: Path = typer.Option(None, help="A data set folder (edgedeploy.datasets.save); default: generate."),
          n: int = typer.Option(None, min=1, help="Samples to generate (or to take from --data); default per task."),
          seed: int = typer.Option(0, help="Seed of the generated data."),
          json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Run MODEL over a task's data and print its accuracy (headline metric first) and timings."""
    from edgedeploy.evaluation.runner import evaluate

    options = engine_options("cpu", threads)
    with progress(enabled=not json_) as bar:
        job = bar.add_task(f"eval {model}", total=None)
        r = evaluate(model, task, engine=engine, options=options, data=data, n=n, seed=seed,
                     progress=lambda done, total: bar.update(job, completed=done, total=total))
    if json_:
        return emit_json(r.to_dict())
    rows = [[r.metric, f"{r.value:.4f}"]] + [
        [k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in r.details.items()
        if k != r.metric and isinstance(v, (int, float)) and v is not None]
    console.print(table(f"{r.model} on {r.task} ({r.engine}; {r.data})", ["metric", "value"], rows,
                        justify_right=("value",)))
    console.print(table("mean ms per sample", ["stage", "preprocess", "model", "postprocess", "total"],
                        [[stage] + [fmt_ms(t[k]) for k in ("preprocess_ms", "model_ms", "postprocess_ms", "total_ms")]
                         for stage, t in r.timings.items()],
                        justify_right=("preprocess", "model", "postprocess", "total")))
    console.print(f"{r.n} samples in {r.seconds:.1f} s (loading models and data: {r.setup_seconds:.1f} s)")
