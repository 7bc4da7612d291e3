"""The seed's troubleshooting table, automated: each row checked on the model, with measured evidence.

| problem | causes checked | evidence |
|---|---|---|
| slow inference | graph optimisation off; thread count; wrong engine for this model | each alternative measured |
| out of memory | batch size; memory arena / memory optimisation | the footprint at each setting, measured |
| accuracy drop after quantization | layers whose INT8 rounding error is large | per-layer SQNR of weights and activations |
| operators not supported | by each installed engine; by the target device | the engine's own load error; the device's op list |

Every measurement here is made by the benchmark worker, as ``deploy`` makes it (fresh process,
p50 with its 95% interval, model-attributable peak RSS), and a setting is called better only
when its interval is clearly below. A **deployment directory** is judged exactly as ``deploy``
judged it: its recorded plan is measured again and held to the same targets by the same rules
(:func:`edgedeploy.deploy.tuner.check_targets`); the choice among alternatives was deploy's, made
by measuring, and is reported, not second-guessed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgedeploy.units import fmt_bytes, fmt_ms

PROBE_METHOD = ("measured as deploy measures: benchmark worker in a fresh process, median of {runs} warm runs "
                "(95% interval); memory = peak RSS - baseline after the engine's warm-up")


@dataclass
class Finding:
    check: str  # "slow" | "memory" | "accuracy" | "operators" | "deployment" | "targets"
    status: str  # "problem" | "ok" | "info"
    title: str
    evidence: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)


@dataclass
class DoctorReport:
    subject: str
    kind: str  # "model" | "config" | "deployment"
    findings: list[Finding]

    @property
    def problems(self) -> int:
        return sum(f.status == "problem" for f in self.findings)

    def to_dict(self) -> dict:
        return {"subject": self.subject, "kind": self.kind, "problems": self.problems,
                "findings": [asdict(f) for f in self.findings]}


def probe(model: str, engine: str, shape, *, runs: int = 10, **options) -> dict:
    """Open ``model`` on ``engine`` with ``options`` and measure it with the benchmark worker in a fresh process —
    the measurement ``deploy`` makes: p50 ms with its 95% interval, model-attributable memory in bytes."""
    from edgedeploy.benchmarking import BenchConfig, run_one
    from edgedeploy.engines import EngineOptions
    from edgedeploy.plan import DeploymentPlan, ModelFile

    opts = EngineOptions(**options)
    shape = tuple(shape)
    plan = DeploymentPlan(engine=engine, precision=opts.precision, model=ModelFile.of(model), options=opts,
                          batch=shape[0], shape=shape)
    return _as_probe(run_one(BenchConfig.from_plan(plan, runs=runs, warmup=1, time_budget_s=None)))


def _as_probe(r) -> dict:
    if not r.ok:
        return {"ok": False, "error": " ".join(r.reason.split())[:400]}
    return {"ok": True, "p50": r.p50, "p50_low": r.latency_ms.get("p50_low", r.p50),
            "p50_high": r.latency_ms.get("p50_high", r.p50), "memory_bytes": (r.model_memory_mb or 0) * 2**20,
            "notes": list(r.notes)}


def _clearly_faster(a: dict, b: dict) -> bool:
    """``a`` faster than ``b`` beyond the noise band (:mod:`edgedeploy.engines.timing`): a's 95% interval of
    the median entirely below b's. No margin on top: the interval is the evidence."""
    return a["ok"] and b["ok"] and a["p50_high"] < b["p50_low"]


def _subject(target: str):
    """(kind, config or None, model source, manifest or None) for a model, a config, or a deployment dir."""
    from edgedeploy.deploy import config as cfgmod
    from edgedeploy.deploy import manifest

    p = Path(target)
    if p.is_dir() and (p / manifest.MANIFEST).exists():
        return "deployment", None, None, p
    if p.suffix.lower() in (".yaml", ".yml"):
        cfg = cfgmod.load(p)
        return "config", cfg, cfg.model, None
    return "model", None, target, None


def diagnose(target: str, *, shape: str | None = None, engine: str | None = None, runs: int = 10,
             progress=None) -> DoctorReport:
    """Run every check on ``target`` (a model, a deployment YAML, or a deployment directory)."""
    from edgedeploy import engines
    from edgedeploy.benchmarking import resolve_shape
    from edgedeploy.deploy import config as cfgmod
    from edgedeploy.deploy import manifest
    from edgedeploy.errors import UserError
    from edgedeploy.ingest import load_model

    kind, cfg, source, ddir = _subject(target)
    if kind == "deployment":
        try:
            record = manifest.verify(ddir)
        except UserError as exc:
            return DoctorReport(str(target), kind, [Finding("deployment", "problem", "files do not match the manifest",
                                                            [str(exc)], ["deploy again: `edgedeploy deploy CONFIG -o DIR`"])])
        return DoctorReport(str(target), kind, _deployment(ddir, record, progress))  # deploy's own runs and repeats
    findings: list[Finding] = []
    model = load_model(source, cfg.params if cfg else None)
    dep = cfg.deployment if cfg else None
    full = resolve_shape(model, shape or (dep.input_shape if dep else None), 1)
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    installed = [e for e in engines.ENGINES if engines.available(e) and not engines.runnable(e, model.format)]
    chosen = engine or (dep.engines[0] if dep and dep.engines else engines.resolve("auto", model.format))
    threads = min(max(dep.threads(cores)) if dep else cores, cores)
    fusion = dep.operator_fusion if dep else True
    memopt = dep.memory_optimization if dep else False
    batch = max(dep.batches()) if dep else 1
    steps = iter(range(100))

    seen: dict = {}
    runtime = dep.precision[0] if dep and dep.precision != "auto" and len(dep.precision) == 1 else "fp32"
    runtime = runtime if runtime in ("fp32", "bf16", "fp16") else "fp32"  # int8 comes from the model file

    def run(e, **opts):
        if e == chosen and runtime != "fp32":
            opts.setdefault("precision", runtime)  # probe the engine as deployed; the others at fp32
        opts.setdefault("threads", threads)
        opts.setdefault("graph_optimization", fusion)
        opts.setdefault("memory_optimization", memopt)
        key = (e, tuple(sorted((k, str(v)) for k, v in opts.items())))
        if key not in seen:  # each setting is probed once, whichever check asks
            if progress:
                progress(f"probing {e} {opts}", next(steps))
            seen[key] = probe(model.path if model.format == "onnx" else source, e, opts.pop("shape", full),
                              runs=runs, **opts)
        return seen[key]

    method = PROBE_METHOD.format(runs=runs)
    base = run(chosen)
    findings += _slow(model, chosen, base, run, installed, threads, cores, fusion, method)
    findings += _memory(chosen, base, run, batch, full, memopt, cfg, method)
    findings += _operators(model, chosen, base, run, installed, cfg, full)
    findings += _accuracy(model, full, dep)
    return DoctorReport(str(target), kind, findings)


def _deployment(ddir: Path, record: dict, progress) -> list[Finding]:
    """A deployment judged as deploy judged it: its plan measured again, the same targets, the same rules."""
    from edgedeploy.deploy import config as cfgmod
    from edgedeploy.deploy import manifest
    from edgedeploy.deploy.runtime import deployed_plan
    from edgedeploy.deploy.tuner import MISSED, UNVERIFIABLE, bench_measure, check_targets, judge, verdict

    findings = [Finding("deployment", "ok", "every file matches its sha256 in the manifest")]
    cfg = cfgmod.load(ddir / manifest.CONFIG)
    plan = deployed_plan(ddir, record)
    tried = record.get("measurements", [])
    findings.append(Finding("deployment", "info", f"deployed plan: {plan.label} (chosen by deploy from "
                                                  f"{len(tried)} measured configurations)",
                            [f"engine options: {plan.options.to_dict()}", f"model: {plan.model.made_by}"]))
    if progress:
        progress(f"measuring {plan.label} as deploy did", 0)
    m, _ = judge(plan.under(ddir), cfg, record.get("reference_accuracy"), bench_measure(cfg))
    if not m.ok:
        return findings + [Finding("targets", "problem", f"the deployed plan no longer runs here: {m.reason}", [],
                                   ["deploy again on this machine"])]
    checks = check_targets(m, cfg, record.get("reference_accuracy"))
    for c in checks:
        status = {MISSED: "problem", UNVERIFIABLE: "info"}.get(c.status, "ok")
        if c.status == UNVERIFIABLE and not verdict([c], cfg.performance.estimated):
            status = "problem"
        findings.append(Finding("targets", status, f"{c.name}: {c.target}", [f"measured {c.measured} ({c.how})"],
                                [] if status != "problem" else ["deploy again: the machine or its load changed"]))
    return findings


def _slow(model, engine, base, run, installed, threads, cores, fusion, method) -> list[Finding]:
    from edgedeploy import engines

    out = []
    if not base["ok"]:
        return [Finding("slow", "problem", f"{engine} cannot run {model.name}", [base["error"]],
                        [f"use one of: {', '.join(e for e in installed if e != engine) or 'none installed'}"])]
    here = f"{engine}, {threads} threads: {fmt_ms(base['p50'])}"
    if "graph_optimization" in engines.spec(engine).options:
        other = run(engine, graph_optimization=not fusion)
        if other["ok"]:
            on, off = (base, other) if fusion else (other, base)
            ev = [f"graph optimisation on: {fmt_ms(on['p50'])}, off: {fmt_ms(off['p50'])} ({method})"]
            if not fusion and _clearly_faster(on, off):
                out.append(Finding("slow", "problem", "graph optimisation (operator fusion) is off", ev,
                                   [f"set operator_fusion: true — measured {off['p50'] / on['p50']:.1f}x faster"]))
            else:
                out.append(Finding("slow", "ok", "graph optimisation", ev))
    if threads < cores:
        more = run(engine, threads=cores)
        if _clearly_faster(more, base):
            out.append(Finding("slow", "problem", f"{threads} thread(s) of {cores}",
                               [f"{threads} threads: {fmt_ms(base['p50'])}; {cores}: {fmt_ms(more['p50'])} ({method})"],
                               [f"thread_num: {cores} (costs power: see the power target)"]))
    alts = {e: run(e) for e in installed if e != engine}
    faster = {e: r for e, r in alts.items() if _clearly_faster(r, base)}
    ev = [here] + [f"{e}: {fmt_ms(r['p50'])} ({fmt_ms(r['p50_low'])}-{fmt_ms(r['p50_high'])})" if r["ok"]
                   else f"{e}: fails ({r['error'][:120]})" for e, r in alts.items()]
    if faster:
        best = min(faster, key=lambda e: faster[e]["p50"])
        out.append(Finding("slow", "problem", f"{engine} is not the fastest engine for this model", ev + [method],
                           [f"use {best}: measured {base['p50'] / faster[best]['p50']:.1f}x faster "
                            f"(deployment.engines: [{best}])"]))
    elif all(not r["ok"] or _clearly_faster(base, r) for r in alts.values()):
        out.append(Finding("slow", "ok", f"{engine} is the fastest installed engine here", ev + [method]))
    else:  # the 95% intervals overlap: the evidence cannot rank them, and doctor does not pretend it can
        tied = [e for e, r in alts.items() if r["ok"] and not _clearly_faster(base, r)]
        out.append(Finding("slow", "ok", f"no installed engine is clearly faster than {engine} "
                                         f"(within the noise band of {', '.join(tied)})", ev + [method]))
    return out


def _memory(engine, base, run, batch, full, memopt, cfg, method) -> list[Finding]:
    from edgedeploy import engines

    if not base["ok"]:
        return []
    ev = [f"batch 1, memory_optimization {memopt}: {fmt_bytes(base['memory_bytes'])} ({method})"]
    advice = []
    limit = cfg.performance.max_memory if cfg else None
    if batch > 1:
        big = run(engine, shape=(batch, *full[1:]))
        if big["ok"]:
            ev.append(f"batch {batch}: {fmt_bytes(big['memory_bytes'])}")
            if limit and big["memory_bytes"] > limit >= base["memory_bytes"]:
                advice.append(f"batch_size: 1 fits {fmt_bytes(limit)} (measured {fmt_bytes(base['memory_bytes'])})")
    if "memory_optimization" in engines.spec(engine).options:
        other = run(engine, memory_optimization=not memopt)
        if other["ok"]:
            ev.append(f"memory_optimization {not memopt}: {fmt_bytes(other['memory_bytes'])}, {fmt_ms(other['p50'])} "
                      f"(vs {fmt_ms(base['p50'])})")
            if not memopt and other["memory_bytes"] < base["memory_bytes"] * 0.9:
                advice.append(f"memory_optimization: true saves {fmt_bytes(base['memory_bytes'] - other['memory_bytes'])} "
                              "(no ONNX Runtime arena: activations freed after each run)")
    over = limit is not None and base["memory_bytes"] > limit
    if over:
        advice.append("quantize to INT8 (weights 4x smaller) or pick a smaller input size")
    status = "problem" if over or (limit and advice) else "ok"
    title = (f"footprint {fmt_bytes(base['memory_bytes'])} vs max_memory {fmt_bytes(limit)}" if limit
             else f"footprint {fmt_bytes(base['memory_bytes'])}")
    return [Finding("memory", status, title, ev, advice)]


# Edge TPU: ONNX ops with an Edge TPU-mapped TFLite builtin (Coral docs, "TensorFlow models on the Edge TPU").
CORAL_OPS = {"Add", "AveragePool", "Concat", "Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "ReduceMean",
             "Mul", "Pad", "PRelu", "Relu", "Clip", "Reshape", "Resize", "Sigmoid", "Slice", "Softmax", "Split",
             "Squeeze", "Unsqueeze", "Sub", "Tanh", "Transpose", "Flatten", "GlobalAveragePool", "ReduceSum",
             "ReduceMax", "Max", "Min", "DepthToSpace", "SpaceToDepth", "QuantizeLinear", "DequantizeLinear",
             "Identity", "Constant"}


def _operators(model, engine, base, run, installed, cfg, full) -> list[Finding]:
    import re

    from edgedeploy.hardware import get
    from edgedeploy.modelinfo import describe

    out = []
    info = describe(model, shape=tuple(full))
    probes = {engine: base} | {e: run(e) for e in installed if e != engine}
    failing = {e: r["error"] for e, r in probes.items() if not r["ok"]}
    for e, err in failing.items():
        ops = [op for op in info.op_histogram if re.search(rf"\b{op}\b", err)]
        ok = [x for x, r in probes.items() if r["ok"]]
        out.append(Finding("operators", "problem", f"{e} cannot load the model" + (f" (operator {', '.join(ops)})" if ops else ""),
                           [err], [f"run it on {', '.join(ok)} (loads and runs: measured)" if ok else
                                   "replace the operator in the exporter, or add a custom op"]))
    if not failing:
        out.append(Finding("operators", "ok", f"every installed engine loads it ({', '.join(probes)})",
                           [f"{len(info.op_histogram)} operator types: {', '.join(list(info.op_histogram)[:12])}…"]))
    hw = cfg.deployment.hardware if cfg else "local"
    if hw != "local":
        d = get(hw)
        if d.key == "coral":
            bad = sorted(set(info.op_histogram) - CORAL_OPS)
            out.append(Finding("operators", "problem" if bad else "ok", f"{d.name}: operators outside the Edge TPU set",
                               [f"not mapped: {', '.join(bad) or 'none'} (they would run on the host CPU)"],
                               ["replace them (e.g. HardSwish → x*Relu6(x+3)/6) or accept CPU fallback"] if bad else []))
        elif not d.edgedeploy_engines:
            out.append(Finding("operators", "info", f"{d.name}: operator support is decided by {d.stack}",
                               [f"no published op list bundled here; model uses {', '.join(list(info.op_histogram)[:10])}…"],
                               [f"convert with {d.stack} and read its unsupported-op report"]))
        if any(isinstance(s, str) or s is None for t in info.inputs for s in t["shape"][1:]) and d.accelerators:
            out.append(Finding("operators", "info", f"dynamic input on {d.name}",
                               ["NPU/TensorRT compilers want a fixed input size"],
                               [f"fix the size with deployment.input_shape: {'x'.join(map(str, full))}"]))
    return out


def layer_sensitivity(model, shape, *, samples: int = 2, top: int = 5) -> list[dict]:
    """Per Conv/MatMul/Gemm layer, the SQNR (dB) of INT8 rounding of its weights (per-tensor) and of its input
    activations (per-tensor, min/max over ``samples`` image-like inputs), over the bulk of the values (up to the
    99th percentile of |x|): the layers quantization hurts most come first."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgedeploy.parity import image_like_input

    proto = onnx.load(str(model.onnx_path()))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = numpy_helper.to_array(a.t)
    layers = [n for n in proto.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and n.input[0] not in inits]
    existing = {o.name for o in proto.graph.output}
    for n in layers:
        if n.input[0] not in existing:
            proto.graph.output.append(onnx.ValueInfoProto(name=n.input[0]))
            existing.add(n.input[0])
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    acts: dict[str, list] = {}
    for s in range(samples):
        outs = sess.run(None, {sess.get_inputs()[0].name: image_like_input(model, tuple(shape), seed=s)})
        for name, v in zip(names, outs):
            acts.setdefault(name, []).append(v)

    def sqnr(x):
        # The grid spans the full min..max range (outliers included), but the SQNR is taken over the bulk
        # (values up to the 99th percentile of |x|): an outlier that stretches the range shows up as lost bulk.
        x = np.asarray(x, np.float32).ravel()
        lo, hi = float(min(x.min(), 0)), float(max(x.max(), 0))
        scale = (hi - lo) / 255 or 1.0
        q = np.clip(np.round((x - lo) / scale), 0, 255) * scale + lo
        bulk = np.abs(x) <= np.percentile(np.abs(x), 99)
        noise = float(np.mean((x[bulk] - q[bulk]) ** 2))
        signal = float(np.mean(x[bulk] ** 2))
        return 10 * math.log10(signal / noise) if noise > 0 and signal > 0 else 99.0

    rows = []
    for n in layers:
        w = inits.get(n.input[1]) if len(n.input) > 1 else None
        a = np.concatenate([v.ravel() for v in acts.get(n.input[0], [])]) if acts.get(n.input[0]) else None
        rows.append({"layer": n.name or n.output[0], "op": n.op_type,
                     "weight_sqnr_db": sqnr(w) if w is not None and w.size else None,
                     "activation_sqnr_db": sqnr(a) if a is not None and a.size else None})
    key = lambda r: min(v for v in (r["weight_sqnr_db"], r["activation_sqnr_db"], 99.0) if v is not None)  # noqa: E731
    return sorted(rows, key=key)[:top]


def _accuracy(model, full, dep) -> list[Finding]:
    if model.format != "onnx":
        return []
    try:
        rows = layer_sensitivity(model, full)
    except Exception as exc:  # a model the probes could not run: the operators check above says why
        return [Finding("accuracy", "info", "INT8 sensitivity not measured: ONNX Runtime cannot run the model",
                        [" ".join(str(exc).split())[:300]])]
    ev = [f"{r['layer']} ({r['op']}): weights {r['weight_sqnr_db'] or 0:.1f} dB, inputs {r['activation_sqnr_db'] or 0:.1f} dB"
          for r in rows]
    weak = [r for r in rows if min(x for x in (r["weight_sqnr_db"], r["activation_sqnr_db"], 99) if x is not None) < 25]
    int8 = dep is not None and "int8" in dep.precisions()
    advice = ([f"mixed precision: keep {', '.join(r['layer'] for r in weak)} in FP32/FP16 (exclude from INT8), "
               "and use per-channel weights"] if weak else [])
    return [Finding("accuracy", "problem" if weak and int8 else "info",
                    "INT8-sensitive layers (lowest SQNR of per-tensor 8-bit rounding; < 25 dB is risky)",
                    ev + ["method: SQNR = signal/rounding-noise power of weights and of the layer's inputs on 2 "
                          "image-like inputs"], advice)] + _int8_outputs(model, full)


def _int8_outputs(model, full, samples: int = 8) -> list[Finding]:
    """INT8 made for real (the optimiser's recipe and sensitivity ranking, every quantized op type):
    an output channel it breaks is a problem — a detector's box head is the classic case."""
    from edgedeploy.optimize import int8_probe
    from edgedeploy.parity import image_like_input

    try:
        import onnxruntime as ort

        name = ort.InferenceSession(str(model.onnx_path()), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        p = int8_probe.probe(model.onnx_path(), [{name: image_like_input(model, tuple(full), seed=s)}
                                                 for s in range(samples)])
    except Exception as exc:  # a model ONNX Runtime cannot quantize: said, not fatal to the other checks
        return [Finding("accuracy", "info", "INT8 not probed: ONNX Runtime could not quantize the model",
                        [" ".join(str(exc).split())[:300]])]
    ev = [f"output {o.name}: worst channel {o.channel} at {o.sqnr_db:.1f} dB under INT8" for o in p.outputs]
    ev += [f"#{i + 1} {e.op} {e.name}: {e.sqnr_db:.1f} dB at its output" for i, e in enumerate(p.ranked[:5])]
    ev.append(f"method: ONNX Runtime static INT8 on {samples} image-like inputs; per feature channel SQNR against "
              f"FP32; nodes ranked by the error they add themselves (every quantized op type); < "
              f"{int8_probe.BROKEN_DB:g} dB on an output channel is broken")
    if p.broken:
        keep = ", ".join(f"{e.op} {e.name}" for e in p.ranked[:3])
        return [Finding("accuracy", "problem", "INT8 breaks " + ", ".join(
            f"output {o.name} (channel {o.channel}: {o.sqnr_db:.1f} dB)" for o in p.broken), ev,
            [f"keep the most sensitive nodes in float ({keep}): `edgedeploy optimize MODEL --calib YOUR_IMAGES` "
             "does this under accuracy control, or deploy at fp16/fp32"])]
    return [Finding("accuracy", "ok", "INT8 keeps every output channel above "
                    f"{int8_probe.BROKEN_DB:g} dB", ev)]


def advise(cfg, result, named_estimate=None) -> list[Finding]:
    """Advice for targets the tuner could not meet, from the measurements it already made."""
    from edgedeploy.deploy.tuner import check_targets, verdict

    out = []
    chosen = result.chosen
    if chosen is None:
        return [Finding("targets", "problem", "no configuration ran",
                        [f"{p.what}: {p.reason}" for p in result.pruned][:6], ["run `edgedeploy doctor` on the model"])]
    ok = [m for m in result.measurements if m.ok]
    stat = cfg.performance.latency_statistic
    for c in check_targets(chosen, cfg, result.reference_accuracy):
        if verdict([c], cfg.performance.estimated):
            continue
        if c.name == "latency":
            fastest = min(ok, key=lambda m: m.latency(stat))
            ev = [f"fastest measured: {fastest.plan.label} {fmt_ms(fastest.latency(stat))} vs target {c.target}"]
            adv = []
            if "int8" not in cfg.deployment.precisions():
                adv.append("allow precision: int8 (quantized models; measure with accuracy control)")
            if named_estimate is not None:
                ev.append(f"estimate on {named_estimate.device}: {fmt_ms(named_estimate.latency_ms)} "
                          f"({fmt_ms(named_estimate.latency_low_ms)}-{fmt_ms(named_estimate.latency_high_ms)}), not measured")
            adv += ["use a smaller input size (deployment.input_shape) or a lighter model",
                    "relax target_latency, or pick a faster device (`edgedeploy devices --recommend`)"]
            out.append(Finding("slow", "problem", f"latency target {c.target} not met", ev, adv))
        elif c.name == "memory":
            least = min(ok, key=lambda m: m.memory_bytes or 0)
            out.append(Finding("memory", "problem", f"memory target {c.target} not met",
                               [f"smallest footprint measured: {least.plan.label} {fmt_bytes(least.memory_bytes)}"],
                               ["batch_size: 1", "memory_optimization: true", "precision: int8 (4x smaller weights)"]))
        elif c.name == "power":
            low = min(ok, key=lambda m: m.power_w or 0)
            out.append(Finding("power", "problem", f"power target {c.target} not met",
                               [f"lowest: {low.plan.label} {low.power_w:.1f} W ({low.power_source[:80]})"],
                               ["fewer threads (thread_num: 1) trade latency for power", "a lower-power device"]))
        elif c.name == "accuracy":
            out.append(Finding("accuracy", "problem", f"accuracy drop above {c.target}", [c.measured],
                               ["keep sensitive layers in FP32/FP16 (see `edgedeploy doctor MODEL`)", "precision: fp16"]))
    return out
