"""Run a deployment directory: verified against its manifest first, then opened as it was chosen,
with its ``monitoring`` section honoured (log level; the listed metrics every ``interval`` inferences)."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from edgedeploy.deploy import config as cfgmod
from edgedeploy.deploy import manifest
from edgedeploy.deploy.tuner import RUNTIME_PRECISIONS
from edgedeploy.units import fmt_bytes, fmt_ms

log = logging.getLogger("edgedeploy.deployment")


class Deployment:
    """A verified deployment, open on its engine. ``run(feeds)`` infers and keeps the metrics."""

    def __init__(self, directory: str | Path, *, trusted_keys=None):
        from edgedeploy import engines
        from edgedeploy.engines import EngineOptions

        self.directory = Path(directory)
        # refuses a forged or modified deployment, naming why (signature too, when trusted keys are given)
        self.manifest = manifest.verify(self.directory, trusted_keys)
        self.config = cfgmod.load(self.directory / manifest.CONFIG)
        d = self.config.deployment
        precision = d.precision[0] if d.precision != "auto" else "fp32"
        self.options = EngineOptions(threads=d.thread_num[0] if d.thread_num != "auto" else None,
                                     graph_optimization=d.operator_fusion, memory_optimization=d.memory_optimization,
                                     precision=precision if precision in RUNTIME_PRECISIONS else "fp32")
        self.session = engines.load(self.config.model, engine=d.engines[0] if d.engines else "auto",
                                    options=self.options, params=self.config.params)
        self.monitoring = self.config.monitoring
        if self.monitoring.enable:
            logging.getLogger("edgedeploy").setLevel(getattr(logging, self.monitoring.log_level.upper()))
        self._times: list[float] = []
        self._count = 0
        self._t0 = time.perf_counter()

    def run(self, feeds):
        t = time.perf_counter()
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
