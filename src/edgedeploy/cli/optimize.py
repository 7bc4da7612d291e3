"""`edgedeploy optimize`: graph passes + INT8/FP16 per engine, guarded by accuracy, measured."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.model import MODEL_HELP
from edgedeploy.cli.output import console, emit_json, phases, table


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
             target: str = typer.Option(None, "--target", help="Edge target (rk3588, raspberry-pi-5, jetson-orin-nano, "
                                        "...): optimise for an engine it runs; its latency is shown estimated."),
             time_budget: float = typer.Option(None, "--time-budget", min=0.1,
                                               help="Seconds of distillation at most (with --prune): it stops there "
                                               "and the model so far is still measured and reported."),
             json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Make MODEL smaller and faster on the target engine without losing more than --max-accuracy-drop.

    Writes the model only if it is within the accuracy budget (points of the metric) and faster than
    the best FP32 configuration on its engine (--goal size: smaller); otherwise prints the figures,
    writes nothing and exits 1. Size, accuracy and latency before/after are measured here, now.
    """
    from edgedeploy.errors import VerdictError
    from edgedeploy.optimize import optimize as run, report_path

    chosen = None
    if target:
        engine, chosen = _for_target(target, engine, precision)
    try:
        with phases("optimize", not json_) as say:
            r = run(model, output, engine=engine, precision=precision, calib=calib, calib_method=calib_method,
                    calib_samples=calib_samples, task=task, like=like, card=card, data=data, goal=goal,
                    max_accuracy_drop=max_accuracy_drop, eval_samples=eval_samples, threads=threads,
                    latency_rounds=rounds, prune=prune, distill_steps=distill_steps, time_budget=time_budget,
                    progress=say)
    except VerdictError as exc:  # the figures for machines; the one line and exit 1 come from the CLI's contract
        if json_:
            emit_json({"written": False, "verdict": str(exc), **exc.figures})
        raise
    figures = _target_figures(chosen, model, r) if chosen else None
    if json_:
        return emit_json({**r.to_dict(), **({"target": figures} if figures else {})})
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
    if figures:
        from edgedeploy.cli.bench import print_target_figures

        print_target_figures(figures)


def _for_target(name: str, engine: str, precision: str):
    """The engine to optimise for on target ``name`` (one it runs that optimize makes models for)."""
    from edgedeploy.errors import UserError
    from edgedeploy.targets.select import choose, here_engines

    t = choose(name, precisions=[precision] if precision != "auto" else [], engines=[engine])
    if t.key == "local":
        return engine, t
    usable = here_engines(t, ("onnxruntime", "openvino"))
    if engine == "auto":
        if not usable:
            raise UserError(f"optimize makes ONNX Runtime and OpenVINO models; {t.key} runs neither: "
                            f"edgedeploy deploy with hardware: {t.key} makes its artefacts")
        engine = usable[0]
    return engine, t


def _target_figures(t, model: str, r) -> dict:
    """The target's estimate at the result's precision, costed on the source model (its shape is known)."""
    from edgedeploy.targets.select import estimated, not_the_targets

    return {"key": t.key, "isa": t.isa, "note": not_the_targets(t),
            "estimated": estimated(t, model, precisions=[str(r.precision)])}
