"""``deploy(config)``: tune on this machine, check every target, write the deployment directory.

Measurements are always made on *this* machine. When the config names another device
(``hardware: jetson-nano``), the report says so and adds the estimator's figure for that
device beside the measurements — labelled an estimate, never a measurement.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgedeploy.deploy import config as cfgmod
from edgedeploy.deploy import manifest
from edgedeploy.deploy.tuner import Measurement, TuneResult, bench_measure, default_produce, tune
from edgedeploy.errors import VerdictError
from edgedeploy.units import fmt_bytes, fmt_ms

log = logging.getLogger("edgedeploy.deploy")


@dataclass
class DeployReport:
    config: cfgmod.DeploymentConfig
    result: TuneResult
    out_dir: Path | None
    named_estimate: object | None  # hardware.estimate.Estimate for the named device
    advice: list = field(default_factory=list)  # doctor Findings when a target is not met
    notes: list[str] = field(default_factory=list)
    artifacts: list = field(default_factory=list)  # targets.build.Artifact: what the named target runs

    @property
    def met(self) -> bool:
        return self.result.met

    def verdict_error(self) -> VerdictError | None:
        """None when every target passed; else the negative verdict (exit 1) with the figures behind it."""
        if self.met:
            return None
        missed = [f"{c.name} {c.measured} vs {c.target}" for c in self.result.checks if not c.met]
        return VerdictError(f"targets not met on this machine ({'; '.join(missed) or 'nothing ran'}); "
                            "no deployment written", figures={"checks": [c.to_dict() for c in self.result.checks],
                                                              "chosen": self.result.chosen.to_dict()
                                                              if self.result.chosen else None})

    def to_dict(self) -> dict:
        return {"met": self.met, "out_dir": str(self.out_dir) if self.out_dir else None,
                "hardware": self.config.deployment.hardware, "measured_on": "this machine",
                "named_device_estimate": self.named_estimate.to_dict() if self.named_estimate else None,
                "result": self.result.to_dict(), "advice": [asdict(a) for a in self.advice], "notes": self.notes,
                "target_artifacts": [a.to_dict() for a in self.artifacts]}


def _monitor(cfg: cfgmod.DeploymentConfig):
    """Honour ``monitoring``: set the log level and report the listed metrics of each measured configuration."""
    mon = cfg.monitoring
    if not mon.enable:
        return None
    logging.getLogger("edgedeploy").setLevel(getattr(logging, mon.log_level.upper()))

    def report(m: Measurement) -> None:
        if not m.ok:
            log.info("monitoring %s: failed: %s", m.plan.label, m.reason)
            return
        parts = {"latency": f"latency p50 {fmt_ms(m.latency('p50'))} p99 {fmt_ms(m.latency('p99'))}",
                 "memory": f"memory {fmt_bytes(m.memory_bytes)}",
                 "throughput": f"throughput {m.throughput or 0:.1f}/s",
                 "power": f"power {m.power_w or 0:.1f} W ({'measured' if m.power_measured else 'estimated'})",
                 "cpu": f"cpu {', '.join(m.notes[-1:]) or '-'}"}
        log.info("monitoring %s: %s", m.plan.label, ", ".join(parts[k] for k in mon.metrics if k in parts))

    return report


def resolved_config(cfg: cfgmod.DeploymentConfig) -> dict:
    """The config as written, every unit in canonical form (ms, bytes, W). What was chosen is the
    plan in the manifest, not this file: the search lists stay as the user wrote them."""
    data = cfg.resolved()
    perf = cfg.performance
    data["performance"]["target_latency"] = f"{perf.target_latency}ms" if perf.target_latency else None
    data["performance"]["max_memory"] = f"{perf.max_memory}B" if perf.max_memory else None
    data["performance"]["power_consumption"] = f"{perf.power_consumption}W" if perf.power_consumption else None
    data["search"]["time_budget"] = f"{cfg.search.time_budget}ms"
    data["search"]["timeout"] = f"{cfg.search.timeout}ms"
    return data


def deploy(config_path: str | Path, out_dir: str | Path | None = None, *, measure=None, produce=None,
           progress=None, hardware: str | None = None) -> DeployReport:
    """Load and validate the YAML, tune here, and (when every target is met) write ``out_dir`` with the
    chosen :class:`~edgedeploy.plan.DeploymentPlan` in its manifest. ``hardware`` (a target key)
    replaces the YAML's ``deployment.hardware``."""
    from edgedeploy.deploy.doctor import advise
    from edgedeploy.fsio import scratch_dir
    from edgedeploy.ingest import load_model

    cfg = cfgmod.load(config_path)
    if hardware:
        cfg = cfg.model_copy(update={"deployment": cfg.deployment.model_copy(update={"hardware": hardware})})
    on_result = _monitor(cfg)
    measure = measure or bench_measure(cfg, on_result=on_result)
    with scratch_dir("tune") as work:  # the made models, until the chosen one is copied into the deployment
        result = tune(cfg, measure=measure, produce=produce or default_produce(cfg, str(work)), progress=progress)
        notes = list(result.notes)
        est = None
        if cfg.deployment.hardware != "local":
            notes.append(f"measured on this machine, not on {cfg.deployment.hardware}: the {cfg.deployment.hardware} "
                         "figures are estimates (edgedeploy estimate)")
            est = _named_estimate(cfg, result)
        advice = [] if result.met else advise(cfg, result, est)
        written = None
        artifacts: list = []
        if result.met and out_dir is not None:
            plan = result.plan
            model = load_model(plan.model.path, plan.model.params)
            record = {"chosen": result.chosen.to_dict(), "checks": [x.to_dict() for x in result.checks],
                      "measured_on": "this machine", "hardware": cfg.deployment.hardware,
                      "named_device_estimate": est.to_dict() if est else None,
                      "reference_accuracy": result.reference_accuracy,
                      "measurements": [m.to_dict() for m in result.measurements],
                      "pruned": [asdict(p) for p in result.pruned]}
            written = manifest.write(out_dir, model=model, resolved=resolved_config(cfg), record=record, plan=plan,
                                     before_sign=lambda d: _target_artifacts(cfg, d, result, progress, artifacts))
        elif out_dir is not None:
            notes.append(f"nothing written to {out_dir}: a deployment is written only when every target is met")
    return DeployReport(cfg, result, written, est, advice, notes, artifacts)


def _target_artifacts(cfg, directory: Path, result: TuneResult, progress, into: list) -> dict:
    """The named target's artefacts, built into the deployment before it is signed (so they are listed)."""
    from edgedeploy.targets.build import for_deployment

    into.extend(for_deployment(cfg, directory, shape=tuple(result.shape),
                               progress=progress and (lambda what: progress(what, 0, None))))
    return {"target_artifacts": [a.to_dict() for a in into]} if into else {}


def _named_estimate(cfg, result: TuneResult):
    from edgedeploy.errors import UserError
    from edgedeploy.hardware.estimate import estimate

    precision = result.plan.precision.value if result.plan else "fp32"
    try:
        return estimate(cfg.model, cfg.deployment.hardware, shape=tuple(result.shape), precision=precision, top=5)
    except UserError as exc:
        log.warning("no estimate for %s: %s", cfg.deployment.hardware, exc)
        return None


__all__ = ["DeployReport", "deploy", "resolved_config"]
