"""Prometheus metrics of one server, labelled by model and version (and A/B variant).

Each server owns its registry (no process-global state), served at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the app)

_LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The server's counters, histograms and gauges (see each attribute's help text)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes and friends
        mv = ["model", "version"]
        self.requests = Counter("edgedeploy_requests", "Inference requests by outcome (ok, client_error, "
                                "server_error, timeout)", [*mv, "outcome"], registry=r)
        self.latency = Histogram("edgedeploy_request_latency_seconds", "Time from request arrival to response, "
                                 "successful requests", mv, buckets=_LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("edgedeploy_inference_seconds", "Time inside the engine", mv,
                                   buckets=_LATENCY_BUCKETS, registry=r)
        self.queue = Histogram("edgedeploy_queue_seconds", "Time waiting for a load and a free instance", mv,
                               buckets=_LATENCY_BUCKETS, registry=r)
        self.memory = Gauge("edgedeploy_model_memory_bytes", "Resident memory a loaded model version added "
                            "(RSS growth over its load and warm-up)", mv, registry=r)
        self.loads = Counter("edgedeploy_model_loads", "Model version loads", mv, registry=r)
        self.evictions = Counter("edgedeploy_model_evictions", "Unloads forced by the memory budget", mv, registry=r)
        self.unloads = Counter("edgedeploy_model_unloads", "Unloads asked for (API, swap)", mv, registry=r)
        self.freed = Counter("edgedeploy_model_freed_bytes", "RSS given back to the OS by unloads and evictions",
                             mv, registry=r)
        self.budget = Gauge("edgedeploy_memory_budget_bytes", "The memory budget (0: none)", registry=r)
        self.used = Gauge("edgedeploy_memory_used_bytes", "Sum of loaded models' measured footprints", registry=r)
        self.swaps = Counter("edgedeploy_swaps", "Hot updates by result (ok, failed)", ["model", "result"], registry=r)
        self.ab = Counter("edgedeploy_ab_requests", "A/B test requests by variant and outcome",
                          [*mv, "variant", "outcome"], registry=r)

    def model_event(self, kind: str, name: str, version: int, nbytes: int, used: int) -> None:
        """A hook for :class:`~edgedeploy.serving.memory.MemoryManager` events."""
        labels = (name, str(version))
        if kind == "load":
            self.loads.labels(*labels).inc()
            self.memory.labels(*labels).set(nbytes)
        else:
            (self.evictions if kind == "evict" else self.unloads).labels(*labels).inc()
            self.freed.labels(*labels).inc(nbytes)
            try:
                self.memory.remove(*labels)
            except KeyError:  # never loaded under these labels
                pass
        self.used.set(used)

    def render(self) -> bytes:
        return generate_latest(self.registry)
