"""Run a deployment directory: verified against its manifest first, then its recorded
:class:`~edgedeploy.plan.DeploymentPlan` opened exactly as it was measured, with the config's
``monitoring`` section honoured (log level; the listed metrics every ``interval`` inferences).

:func:`deployed_plan` is the one way to read a deployment's plan; serving and pipelines open a
deployment with ``deployed_plan(directory).open(base=directory)``.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from edgedeploy.deploy import config as cfgmod
from edgedeploy.deploy import manifest
from edgedeploy.errors import UserError
from edgedeploy.plan import DeploymentPlan
from edgedeploy.units import fmt_bytes, fmt_ms

log = logging.getLogger("edgedeploy.deployment")


def deployed_plan(directory: str | Path, record: dict | None = None, *, trusted_keys=None) -> DeploymentPlan:
    """The plan recorded in the deployment's manifest (verified first, against ``trusted_keys`` when given,
    unless ``record``, the verified manifest, is given); its model path is relative to ``directory``."""
    record = manifest.verify(directory, trusted_keys) if record is None else record
    if "plan" not in record:
        raise UserError(f"deployment {directory} records no deployment plan (made by an older edgedeploy); "
                        "deploy again")
    return DeploymentPlan.from_dict(record["plan"])


def open_plan(directory: str | Path, *, trusted_keys=None):
    """The verified deployment's session, opened as planned (for serving and pipelines)."""
    return deployed_plan(directory, trusted_keys=trusted_keys).open(base=directory)


class Deployment:
    """A verified deployment, open on its engine. ``run(feeds)`` infers and keeps the metrics."""

    def __init__(self, directory: str | Path, *, trusted_keys=None):
        self.directory = Path(directory)
        # refuses a forged or modified deployment, naming why (signature too, when trusted keys are given)
        self.manifest = manifest.verify(self.directory, trusted_keys)
        self.config = cfgmod.load(self.directory / manifest.CONFIG)
        self.plan = deployed_plan(self.directory, self.manifest)
        self.options = self.plan.options
        self.session = self.plan.open(base=self.directory)
        self.monitoring = self.config.monitoring
        if self.monitoring.enable:
            logging.getLogger("edgedeploy").setLevel(getattr(logging, self.monitoring.log_level.upper()))
        self._times: list[float] = []
        self._count = 0
        self._t0 = time.perf_counter()

    def run(self, feeds):
        t = time.perf_counter()  # each live inference is timed as it serves, not in a timing loop
        out = self.session.run(feeds)
        self._times.append((time.perf_counter() - t) * 1000)
        self._count += 1
        if self.monitoring.enable and self._count % self.monitoring.interval == 0:
            log.info("monitoring: %s", self.metrics_line())
        return out

    def metrics(self) -> dict:
        import psutil

        window = self._times[-self.monitoring.interval:]
        wall = time.perf_counter() - self._t0
        return {"inferences": self._count,
                "latency_p50_ms": statistics.median(window) if window else None,
                "memory_rss_bytes": psutil.Process().memory_info().rss,
                "throughput_per_s": self._count / wall if wall > 0 else None}

    def metrics_line(self) -> str:
        m = self.metrics()
        parts = {"latency": f"latency p50 {fmt_ms(m['latency_p50_ms'])}", "memory": f"RSS {fmt_bytes(m['memory_rss_bytes'])}",
                 "throughput": f"throughput {m['throughput_per_s'] or 0:.1f}/s"}
        return ", ".join(parts[k] for k in self.monitoring.metrics if k in parts) + f" ({m['inferences']} inferences)"

    def close(self) -> None:
        self.session.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_deployment(directory: str | Path, *, trusted_keys=None) -> Deployment:
    return Deployment(directory, trusted_keys=trusted_keys)
