"""`edgedeploy optimize`: graph passes + INT8/FP16 per engine, guarded by accuracy, measured."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.model import MODEL_HELP
from edgedeploy.cli.output import console, emit_json, progress, table


def optimize(model: str = typer.Argument(..., help=MODEL_HELP + " Also PyTorch: a TorchScript .pt, an "
                                          "ExportedProgram .pt2, or module.py:factory (exported to ONNX first; needs "
                                          "a card with the input size)."),
             output: Path = typer.Option(..., "-o", "--output", help="Where to write the optimised .onnx model "
                                         "(the report goes beside it as .report.json)."),
             engine: str = typer.Option("auto", help="onnxruntime, openvino or auto (measure both, keep the fastest)."),
             precision: str = typer.Option("int8", help="int8, fp16 (GPU targets), fp32 (graph passes only) or auto."),
             calib: str = typer.Option(None, help="Calibration data: an image folder (recursive; class sub-folders "
                                       "give labels), a CSV of path,label, a video, .npy/.npz tensors, or a data set "
                                       "name; default: the task's generated data. Split by a fixed seed into "
                                       "calibration and held-out evaluation samples."),
             card: Path = typer.Option(None, "--card", help="Model card (YAML): input size, layout, colours, mean/std, "
                                       "resize, task, labels; default: MODEL.card.yaml beside the model."),
             data: str = typer.Option(None, "--data", help="Evaluation data (same forms as --calib; labelled: top-1 "
                                      "accuracy); default: the held-out part of --calib."),
             goal: str = typer.Option("speed", help="speed: the result must be faster than the best FP32 configuration "
                                      "on its engine; size: it must be smaller."),
             calib_method: str = typer.Option("default", "--calib-method",
                                              help="default, minmax, entropy or percentile."),
             calib_samples: int = typer.Option(None, "--calib-samples", min=1, help="Calibration samples to use."),
             task: str = typer.Option(None, help="Task whose metric guards accuracy (default: the zoo model's own)."),
             like: str = typer.Option(None, help="Zoo model whose preprocessing a plain .onnx file shares."),
             max_accuracy_drop: float = typer.Option(1.0, "--max-accuracy-drop",
                                                     help="Most the task metric may fall, in percentage points."),
             eval_samples: int = typer.Option(None, "--eval-samples", min=1, help="Samples for the accuracy check."),
             threads: int = typer.Option(2, min=1, help="Threads for latency and accuracy runs."),
             rounds: int = typer.Option(5, min=1, help="Interleaved latency rounds."),
             prune: float = typer.Option(0.0, help="Fraction of channels to remove first (structured pruning, then "
                                         "distillation from the original on the --calib data); 0: none."),
             distill_steps: int = typer.Option(600, "--distill-steps", min=1,
                                               help="Distillation steps after pruning (batch 8, 192-pixel windows)."),
             json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Make MODEL smaller and faster on the target engine without losing more than --max-accuracy-drop.

    Writes the model only if it is within the accuracy budget (points of the metric) and faster than
    the best FP32 configuration on its engine (--goal size: smaller); otherwise prints the figures,
    writes nothing and exits 1. Size, accuracy and latency before/after are measured here, now.
    """
    import logging

    from edgedeploy.errors import VerdictError
    from edgedeploy.optimize import optimize as run, report_path

    phase = logging.getLogger("edgedeploy.optimize")
    try:
        with progress(not json_) as bar:
            job = bar.add_task("optimising", total=None)

            def say(msg: str) -> None:
                bar.update(job, description=msg)
                phase.debug("%s", msg)  # phase lines in logs (--log-level debug), where no bar is drawn

            r = run(model, output, engine=engine, precision=precision, calib=calib, calib_method=calib_method,
                    calib_samples=calib_samples, task=task, like=like, card=card, data=data, goal=goal,
                    max_accuracy_drop=max_accuracy_drop, eval_samples=eval_samples, threads=threads,
                    latency_rounds=rounds, prune=prune, distill_steps=distill_steps, progress=say)
    except VerdictError as exc:  # the figures for machines; the one line and exit 1 come from the CLI's contract
        if json_:
            emit_json({"written": False, "verdict": str(exc), **exc.figures})
        raise
    if json_:
        return emit_json(r.to_dict())
    console.print(table(f"{r.model} → {r.output} ({r.precision} on {r.engine}, {r.recipe})",
                        ["", "before", "after"], r.summary_rows()))
    console.print(table("latency on each candidate", ["candidate", "median ms", "min ms"],
                        [[k, f"{v['median_ms']:.2f}", f"{v['min_ms']:.2f}"] for k, v in r.latency_ms.items()]))
    if r.float_layers:
        console.print(table("layers kept in float", ["layer", "op", "SQNR dB", "why"],
                            [[f["name"], f["op"], f["sqnr_db"], f["reason"]] for f in r.float_layers]))
    for line in [*(f"pass: {p}" for p in r.passes), f"calibration: {r.calibration}", f"accuracy: {r.metric_source}",
                 f"latency: {r.latency_method}", *(f"note: {n}" for n in r.notes), f"wrote {r.output} and {report_path(r.output)}"]:
        console.print(line, markup=False, highlight=False)
