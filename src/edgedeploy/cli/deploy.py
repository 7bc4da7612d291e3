"""`edgedeploy deploy`, `devices`, `estimate`, `doctor`, `deployment run|verify`: thin calls into deploy/ and hardware/."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.model import MODEL_HELP
from edgedeploy.util import parse_shape
from edgedeploy.cli.output import console, emit_json, phases, table
from edgedeploy.cli.params import HardwarePrecision, check_fits, check_input_file, check_output_path, threads_option
from edgedeploy.vocab import Engine
from edgedeploy.errors import UserError, VerdictError
from edgedeploy.units import fmt_bytes, fmt_ms, parse_bytes, parse_duration_ms, parse_watts

deployment_app = typer.Typer(help="Run or verify a deployment directory made by `edgedeploy deploy`.",
                             no_args_is_help=True)


class TargetsNotMet(VerdictError):
    """Not every target was met (the report above says which, with the closest configuration)."""


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _findings(findings) -> None:
    for f in findings:
        mark = {"problem": "PROBLEM", "ok": "ok", "info": "info"}[f.status]
        _say(f"[{mark}] {f.check}: {f.title}")
        for e in f.evidence:
            _say(f"    evidence: {e}")
        for a in f.advice:
            _say(f"    advice:   {a}")


def deploy(config: Path = typer.Argument(..., help="Deployment YAML (seed 000's format plus `model:`)."),
           out: Path = typer.Option(None, "-o", "--out", help="Deployment directory to write (default: "
                                                             "deployments/<model> beside the YAML)."),
           target: str = typer.Option(None, "--target", help="Edge target, replacing the YAML's hardware: (rk3588, "
                                      "raspberry-pi-5, jetson-orin-nano, ...; local = this machine)."),
           json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Find the best engine x precision x threads x batch on this machine that meets every target; write it.

    Exit 0 when every target is met (the directory is written); 1 otherwise, with the closest
    configuration and the doctor's advice.
    """
    from edgedeploy.deploy.deployer import deploy as run_deploy

    config = check_input_file(config, flag="CONFIG")
    out = check_output_path(out or config.parent / "deployments" / config.stem, flag="-o", directory=True)
    hardware = None
    if target:
        from edgedeploy.deploy.config import load as load_config
        from edgedeploy.targets.select import choose

        chosen = choose(target)
        wanted = load_config(config, check_model=False).deployment.precisions()
        if wanted and not set(wanted) & set(chosen.precisions()):
            chosen.runtimes_for(wanted[0])  # raises: names the precisions the target's engines run
        hardware = chosen.key
    with phases("deploy", not json_) as say:
        report = run_deploy(config, out, progress=say, hardware=hardware)
    if json_:
        emit_json(report.to_dict())
        if not report.met:
            raise TargetsNotMet(_unmet(report))
        return
    r = report.result
    rows = []
    for m in r.measurements:
        c = m.plan
        rows.append([m.stage, c.engine, "default (anchor)" if c.untuned else c.label.split()[1],
                     "default" if c.threads is None else c.threads, c.batch, fmt_ms(m.latency("p50")) if m.ok else "failed",
                     fmt_bytes(m.memory_bytes) if m.ok else m.reason[:60],
                     f"{m.power_w:.1f} {'M' if m.power_measured else 'E'}" if m.power_w else "-",
                     "-" if m.accuracy is None else f"{m.accuracy:.1%}", "<-" if m is r.chosen else ""])
    console.print(table(f"{r.model} {'x'.join(map(str, r.shape))}: configurations measured on this machine",
                        ["stage", "engine", "precision", "threads", "batch", "p50", "memory", "W (M/E)", "accuracy",
                         "chosen"], rows))
    for p in r.pruned:
        _say(f"pruned: {p.what}: {p.reason}")
    if r.chosen:
        c = r.chosen.plan
        head = "chosen" if r.met else "closest (not every target met)"
        _say(f"{head}: {c.label}" if c.untuned else f"{head}: {c.engine} {c.label.split()[1]}, {c.threads} threads, "
             f"batch {c.batch}")
    console.print(table("targets vs measured (this machine)", ["target", "wanted", "measured", "met", "how"],
                        [[x.name, x.target, x.measured, {"met": "yes", "missed": "NO"}.get(x.status, x.status), x.how]
                         for x in r.checks]))
    e = report.named_estimate
    if e is not None:
        _say(f"{e.device} (not measured — estimate): {fmt_ms(e.latency_ms)} ({fmt_ms(e.latency_low_ms)}-"
             f"{fmt_ms(e.latency_high_ms)}) on {e.unit} at {e.precision}, memory ~{fmt_bytes(e.memory_bytes)}; {e.method}")
    for n in report.notes:
        _say(f"note: {n}")
    if report.out_dir:
        _say(f"wrote {report.out_dir} (model, deployment.yaml, manifest.json)")
    if report.artifacts:
        fig = lambda f, fmt: "-" if f is None or f.value is None else f"{fmt(f.value)} ({f.how})"  # noqa: E731
        console.print(table(f"{report.config.deployment.hardware}: artefacts (how each figure was obtained)",
                            ["engine", "unit", "precision", "files", "accuracy", "FP32 here", "latency", "primary"],
                            [[a.engine, a.unit, a.precision, ", ".join(a.files) or a.notes[-1][:60],
                              fig(a.accuracy, "{:.1%}".format), fig(a.reference, "{:.1%}".format),
                              fig(a.latency_ms, fmt_ms), "yes" if a.primary else ""] for a in report.artifacts]))
    if not report.met:
        _findings(report.advice)
        raise TargetsNotMet(_unmet(report))


def _unmet(report) -> str:
    missed = [f"{c.name} {c.measured} vs {c.target}" for c in report.result.checks if not c.met]
    return (f"targets not met on this machine ({'; '.join(missed) or 'nothing ran'}); closest configuration and "
            "advice above; no deployment written")


def devices(recommend: str = typer.Option(None, "--recommend", help="Rank devices for this model. " + MODEL_HELP),
            latency: str = typer.Option(None, "--latency", help="Latency target, e.g. 10ms."),
            power: str = typer.Option(None, "--power", help="Power budget, e.g. 5W."),
            memory: str = typer.Option(None, "--memory", help="Memory the device must have, e.g. 4GB."),
            precision: HardwarePrecision = typer.Option("int8", help="Lowest precision you accept (NPUs need int8)."),
            shape: str = typer.Option(None, help="Input shape when the model's is dynamic, e.g. 1x3x640x640."),
            json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """The edge devices (published figures, with sources) and this machine (probed); or a ranking for a model."""
    from edgedeploy.hardware import all_profiles
    from edgedeploy.hardware.recommend import recommend as rank

    if recommend is None:
        given = [flag for flag, v in (("--latency", latency), ("--power", power), ("--memory", memory),
                                      ("--shape", shape)) if v is not None]
        if given:
            raise UserError(f"{', '.join(given)} only apply to a ranking; add --recommend MODEL")
        profiles = all_profiles()
        if json_:
            return emit_json([p.to_dict() for p in profiles])
        rows = []
        for p in profiles:
            peaks = "; ".join(f"{u.name}: " + ", ".join(f"{k} {f.value / 1e12:.2f}T" for k, f in u.peak.items() if f)
                              for u in p.units)
            rows.append([p.key, p.name, peaks, fmt_bytes(p.memory_bytes.value) if p.memory_bytes else "-",
                         f"{p.bandwidth.value / 1e9:.1f} GB/s" if p.bandwidth else "-",
                         f"{p.power_w[0]:g}-{p.power_w[1]:g} W" if p.power_w else "-", p.stack,
                         "; ".join(p.sources)])
        console.print(table("devices (T = 10^12 ops/s; every figure's basis is in --json)",
                            ["key", "device", "compute peak", "memory", "bandwidth", "power", "stack", "sources"], rows))
        return None
    from edgedeploy.ingest import load_model

    load_model(recommend)  # a model that is not there is bad input, not a device that "fits"
    rows = rank(recommend, latency_ms=parse_duration_ms(latency, field="--latency") if latency else None,
                power_w=parse_watts(power, field="--power") if power else None,
                memory_bytes=parse_bytes(memory, field="--memory") if memory else None,
                precision=str(precision), shape=parse_shape(shape))
    if json_:
        emit_json([r.to_dict() for r in rows])
    else:
        _ranking(recommend, rows)
    if not any(r.feasible for r in rows):
        raise VerdictError(f"no device meets every target for {recommend} (the ranking says why for each)")


def _ranking(recommend: str, rows) -> None:
    console.print(table(f"devices for {recommend} (compute 50%, toolchain 30%, ecosystem 20%; estimates, not measurements)",
                        ["#", "device", "score", "fits", "compute", "toolchain", "ecosystem", "why"],
                        [[r.rank, r.device, f"{r.score:.2f}", "yes" if r.feasible else "no", r.compute, r.toolchain,
                          r.ecosystem, " | ".join(r.why)] for r in rows]))


def estimate(model: str = typer.Argument(..., help=MODEL_HELP),
             device: str = typer.Option("local", "--device", help="Device key (see `edgedeploy devices`) or local."),
             shape: str = typer.Option(None, help="Input shape, e.g. 1x3x640x640 (needed when dynamic)."),
             precision: HardwarePrecision = typer.Option("fp32", help="Precision to estimate at."),
             unit: str = typer.Option(None, help="cpu, gpu, npu, ... (default: an accelerator when the device has one)."),
             threads: int = threads_option(help="Threads (local CPU only)."),
             calibrate: bool = typer.Option(False, "--calibrate", help="First measure the zoo here and refit the efficiency."),
             top: int = typer.Option(10, min=0, help="Operators to list."),
             json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Latency and memory of MODEL on a device, from per-operator FLOPs and bytes on the device's roofline.

    The efficiency is learned by measuring this machine (`--calibrate`); the band is the
    leave-one-model-out error of that fit (and, for accelerators, of the published latencies).
    """
    from edgedeploy.hardware import estimate as est

    if calibrate:
        with phases("estimate", not json_) as say:
            est.calibrate(progress=lambda i, n, what: say(f"measuring {what}", i, n))
    e = est.estimate(model, device, shape=parse_shape(shape), precision=str(precision), threads=threads, unit=unit, top=top)
    if json_:
        return emit_json(e.to_dict())
    _say(f"{e.model} {'x'.join(map(str, e.shape))} on {e.device} ({e.unit}, {e.precision}) — ESTIMATE, not measured")
    _say(f"latency {fmt_ms(e.latency_ms)} (band {fmt_ms(e.latency_low_ms)} - {fmt_ms(e.latency_high_ms)}); "
         f"memory {fmt_bytes(e.memory_bytes)} ({fmt_bytes(e.memory_low_bytes)} - {fmt_bytes(e.memory_high_bytes)})")
    _say(f"method: {e.method}")
    for b in e.basis:
        _say(f"basis: {b}")
    for n in e.notes:
        _say(f"note: {n}")
    if e.ops:
        console.print(table("heaviest operators (estimated)", ["operator", "type", "GFLOPs", "MB moved", "ms", "bound"],
                            [[o.name, o.op_type, f"{o.flops / 1e9:.3f}", f"{o.bytes / 1e6:.2f}", fmt_ms(o.ms), o.bound]
                             for o in e.ops]))


def doctor(target: str = typer.Argument(..., help="A model, a deployment YAML, or a deployment directory."),
           shape: str = typer.Option(None, help="Input shape (HxW or full) when the model's is dynamic."),
           engine: Engine = typer.Option(None, help="Engine to diagnose (default: the config's, else the native one)."),
           runs: int = typer.Option(10, min=3, help="Warm runs per probe."),
           json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """The seed's troubleshooting table, checked: slow inference, out of memory, INT8 accuracy, unsupported operators.

    Every finding carries its evidence (measured in fresh processes). Exit 1 when a problem is found.
    """
    from edgedeploy.deploy.doctor import diagnose

    if shape:
        check_fits(parse_shape(shape), what=f"--shape {shape}")
    if Path(target).suffix.lower() in (".yaml", ".yml") or (Path(target).is_file() and _looks_like_yaml(target)):
        check_input_file(Path(target), flag="TARGET")
    with phases("doctor", not json_) as say:
        report = diagnose(target, shape=shape, engine=str(engine) if engine else None, runs=runs,
                          progress=lambda what, i: say(what))
    if json_:
        emit_json(report.to_dict())
    else:
        _say(f"doctor: {report.subject} ({report.kind}): {report.problems} problem(s)")
        _findings(report.findings)
    if report.problems:
        raise TargetsNotMet(f"doctor found {report.problems} problem(s) in {report.subject}: see the findings above")


def _looks_like_yaml(target: str) -> bool:
    return Path(target).suffix.lower() not in (".onnx", ".pdmodel", ".json", ".pdiparams")


TRUSTED_KEY_HELP = "Public key (.pub) or key directory the deployment must be signed by (repeatable)."


def _trusted(paths: list[Path] | None):
    if not paths:
        return None
    from edgedeploy.security.keys import load_public_keys

    return load_public_keys(paths)


@deployment_app.command("verify")
def verify(directory: Path = typer.Argument(..., help="A deployment directory."),
           trusted_key: list[Path] = typer.Option(None, "--trusted-key", help=TRUSTED_KEY_HELP),
           json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Check the deployment's signature (with --trusted-key) and every file against its manifest; name
    the first problem."""
    from edgedeploy.deploy import manifest

    m = manifest.verify(directory, _trusted(trusted_key))
    signed = f", signed by key {m['_key_id']}" if m.get("_key_id") else " (signature not checked: no --trusted-key)"
    if json_:
        return emit_json({"ok": True, "key_id": m.get("_key_id"), "files": m["files"]})
    _say(f"{directory}: {len(m['files'])} files match the manifest{signed}")


@deployment_app.command("run")
def run_deployment(directory: Path = typer.Argument(..., help="A deployment directory."),
                   runs: int = typer.Option(200, min=1, help="Inferences on a seeded example input."),
                   trusted_key: list[Path] = typer.Option(None, "--trusted-key", help=TRUSTED_KEY_HELP),
                   json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Verify, open as deployed, and run; monitoring (log level, metrics) as its config says."""
    from edgedeploy.deploy.runtime import open_deployment

    with open_deployment(directory, trusted_keys=_trusted(trusted_key)) as d:
        feeds = d.session.example_feeds(d.plan.shape)
        for _ in range(runs):
            d.run(feeds)
        m = d.metrics()
    if json_:
        return emit_json(m)
    _say(f"{directory}: {d.metrics_line()}")
