"""`edgedeploy info`, `edgedeploy run`, `edgedeploy engines`."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import typer

from edgedeploy import engines
from edgedeploy.cli.output import console, emit_json, fmt_bytes, fmt_ms, table
from edgedeploy.cli.params import MAX_THREADS, check_fits, check_output_path, threads_option
from edgedeploy.engines import EngineOptions
from edgedeploy.errors import UserError
from edgedeploy.vocab import Device, Engine, parse
from edgedeploy.util import image_shape, parse_shape

MODEL_HELP = "A model: .onnx file, Paddle model (dir or .pdmodel/.json + .pdiparams), or a zoo name."


def engine_options(device: Device | str, threads: int | None) -> EngineOptions:
    device = parse(Device, device, what="--device")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UserError(f"--threads {threads}: expected 1..{MAX_THREADS}")
    return EngineOptions(device=device.value, threads=threads)  # type: ignore[arg-type]


def require_gpu(engine: str, device: str) -> None:
    """On the command line a GPU that is not there is an error (the API warns and falls back)."""
    if device == "gpu" and not engines.gpu_available(engine):
        raise UserError(f"--device gpu: {engine} sees no GPU on this machine; drop --device gpu to run on the CPU")


def info(model: str = typer.Argument(..., help=MODEL_HELP),
         shape: str = typer.Option(None, help="Input shape for FLOPs when the model's is dynamic, e.g. 1x3x640x640."),
         json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Inputs, outputs, opset, parameters, size, FLOPs, operator histogram, and which engines run it."""
    from edgedeploy.modelinfo import describe

    i = describe(model, shape=parse_shape(shape))
    if json_:
        return emit_json(i.to_dict())
    flops = "-" if i.flops is None else f"{i.flops / 1e9:.2f} GFLOPs at {'x'.join(map(str, i.flops_shape))}"
    if i.flops is not None and i.flops_nodes_unknown:
        flops += f" ({i.flops_nodes_unknown} Conv/MatMul nodes of unknown shape not counted)"
    console.print(table(f"{i.name} ({i.format})", ["property", "value"], [
        ["path", i.path], ["size", fmt_bytes(i.size_bytes)], ["opset", i.opset or "-"],
        ["parameters", f"{i.parameters:,}"], ["nodes", i.nodes], ["compute", flops],
    ]))
    console.print(table("tensors", ["kind", "name", "dtype", "shape"],
                        [["input", t["name"], t["dtype"], t["shape"]] for t in i.inputs]
                        + [["output", t["name"], t["dtype"], t["shape"]] for t in i.outputs]))
    top = list(i.op_histogram.items())
    console.print(table("operators", ["op", "count"], [[k, v] for k, v in top[:15]]
                        + ([[f"... {len(top) - 15} more types", ""]] if len(top) > 15 else [])))
    console.print(table("engines", ["engine", "runs it"], [[k, v] for k, v in i.engines.items()]))


def _load_inputs(session, inputs: list[str], shape) -> dict[str, np.ndarray]:
    if not inputs or inputs == ["random"]:
        if shape is None and any(d is None for s in session.inputs for d in s.shape[1:]):
            want = ", ".join(f"{s.name} {s.shape_str()}" for s in session.inputs)
            raise UserError(f"the model's input shape is dynamic ({want}); give one with --shape, e.g. --shape 1x3x640x640")
        return session.example_feeds(shape)
    feeds = {}
    for item in inputs:
        name, _, file = item.rpartition("=")
        if not name:
            if len(session.inputs) != 1:
                raise UserError(f"--input {item}: the model has {len(session.inputs)} inputs; write NAME=FILE.npy")
            name = session.inputs[0].name
        path = Path(file)
        if not path.exists():
            raise UserError(f"--input {item}: {file} not found; expected a .npy file or 'random'")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"--input {item}: {file} is not a .npy array ({exc}); save one with numpy.save") from None
    return feeds


def run(model: str = typer.Argument(..., help=MODEL_HELP),
        engine: Engine = typer.Option(Engine.AUTO, help="Engine to run on (auto: the model's native one)."),
        input_: list[str] = typer.Option(None, "--input", help="FILE.npy, NAME=FILE.npy (repeatable) or 'random'."),
        shape: str = typer.Option(None, help="Shape for random input, e.g. 1x3x640x640."),
        threads: int = threads_option(),
        device: Device = typer.Option(Device.CPU, help="Where to run."),
        runs: int = typer.Option(10, min=1, help="Timed runs after one warm-up."),
        save: Path = typer.Option(None, help="Write the outputs to this .npz file."),
        json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Run MODEL once to warm up, then --runs times; print each output's shape and summary, and the latency."""
    from edgedeploy.ingest import load_model

    options = engine_options(device, threads)
    save = check_output_path(save, flag="--save")
    m = load_model(model)
    name = engines.resolve(engine, m.format)
    require_gpu(name, device)
    t0 = time.perf_counter()
    session = engines.load(m, engine=name, options=options)
    load_ms = (time.perf_counter() - t0) * 1000
    dims = image_shape(parse_shape(shape), session.inputs[0].shape if session.inputs else ())
    if dims:
        check_fits(dims, what=f"--shape {shape}")
    feeds = _load_inputs(session, input_ or [], dims or (m.zoo.example_shape if m.zoo else None))
    outputs = session.run(feeds)
    times = session.time(feeds, runs=runs).times_ms
    if save:
        from edgedeploy.util import atomic_write

        with atomic_write(save) as f:
            np.savez(f, **outputs)
    summary = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype),
                "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None,
                "mean": float(v.mean()) if v.size else None,
                # NaN/inf print as null in --json; this count says they were there
                "non_finite": int(v.size - np.count_nonzero(np.isfinite(v))) if v.dtype.kind in "fc" else 0}
               for k, v in outputs.items()]
    result = {"model": m.name, "engine": name, "device": session.device, "load_ms": load_ms,
              "latency_ms": {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": runs},
              "inputs": {k: list(v.shape) for k, v in feeds.items()}, "outputs": summary, "notes": session.notes}
    if json_:
        return emit_json(result)
    console.print(table(f"{m.name} on {name} ({session.device})", ["output", "shape", "dtype", "min", "max", "mean"],
                        [[o["name"], "x".join(map(str, o["shape"])), o["dtype"], f"{o['min']:.4g}", f"{o['max']:.4g}",
                          f"{o['mean']:.4g}"] for o in summary]))
    console.print(f"latency: median {fmt_ms(result['latency_ms']['median'])} ms over {runs} runs "
                  f"(min {fmt_ms(min(times))}, max {fmt_ms(max(times))}); load {fmt_ms(load_ms)} ms")
    for note in session.notes:
        console.print(f"note: {note}")


def engines_(json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """The capability table: what each engine runs, on which devices, at which precisions."""
    rows = []
    for s in engines.ENGINES.values():
        installed = engines.available(s.name)
        rows.append({"engine": s.name, "installed": installed, "gpu": installed and engines.gpu_available(s.name),
                     "formats": list(s.formats), "devices": list(s.devices), "precisions": list(s.precisions),
                     "options": list(s.options), "install": s.install, "description": s.description})
    if json_:
        return emit_json(rows)
    console.print(table("engines", ["engine", "installed", "GPU here", "formats", "precisions", "options"], [
        [r["engine"], "yes" if r["installed"] else f"no: {r['install']}", "yes" if r["gpu"] else "no",
         ", ".join(r["formats"]), ", ".join(r["precisions"]), ", ".join(r["options"])] for r in rows]))
