"""Prometheus metrics of one server, labelled by model and version (and A/B variant).

Each server owns its registry (no process-global state), served at ``/metrics``.
"""

from __future__ import annotations

import threading
import time

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


class Statistics:
    """Per-version request counts and times for Triton's statistics extension (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, int], dict] = {}

    def record(self, name: str, version: int, queue_s: float, compute_s: float, *, ok: bool) -> None:
        with self._lock:
            r = self._rows.setdefault((name, version), {"ok": [0, 0], "fail": [0, 0], "queue": [0, 0],
                                                        "infer": [0, 0], "last": 0})
            total_ns = int((queue_s + compute_s) * 1e9)
            kind = r["ok" if ok else "fail"]
            kind[0] += 1
            kind[1] += total_ns
            if ok:
                r["queue"][0] += 1
                r["queue"][1] += int(queue_s * 1e9)
                r["infer"][0] += 1
                r["infer"][1] += int(compute_s * 1e9)
            r["last"] = int(time.time() * 1000)

    def to_triton(self, name: str | None, version: int | None) -> list[dict]:
        def pair(p):
            return {"count": p[0], "ns": p[1]}
        with self._lock:
            rows = sorted(self._rows.items())
        out = []
        for (n, v), r in rows:
            if (name is not None and n != name) or (version is not None and v != version):
                continue
            zero = {"count": 0, "ns": 0}
            out.append({"name": n, "version": str(v), "last_inference": r["last"], "inference_count": r["ok"][0],
                        "execution_count": r["ok"][0],
                        "inference_stats": {"success": pair(r["ok"]), "fail": pair(r["fail"]), "queue": pair(r["queue"]),
                                            "compute_input": zero, "compute_infer": pair(r["infer"]),
                                            "compute_output": zero, "cache_hit": zero, "cache_miss": zero},
                        "batch_stats": []})
        return out
