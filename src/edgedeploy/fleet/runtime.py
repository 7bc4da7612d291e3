"""The agent's serving runtime: ``serve``'s ModelServer, counting every inference (ok or failed,
latency, per version) for the health report and the fleet's A/B stages; and the temperature sensor."""

from __future__ import annotations

import time
from collections import deque

from edgedeploy.serving.server import ModelServer


def temperature() -> float | None:
    """The hottest sensor psutil can read (None where there are none, as in most VMs)."""
    import psutil

    try:
        temps = [t.current for ts in (psutil.sensors_temperatures() or {}).values() for t in ts if t.current]
    except (AttributeError, OSError):
        return None
    return max(temps) if temps else None


class CountingServer(ModelServer):
    """The serving runtime, counting every inference (ok/failed, latency) for the health report."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: deque[tuple[float, float, bool]] = deque(maxlen=4096)  # (time, ms, ok)
        self.failed_total = self.served_total = 0
        self.per_version: dict[tuple[str, int], dict] = {}  # for fleet A/B stages: requests, errors, recent latencies

    def infer(self, name, version, body, header_length, key, arrived):
        try:
            out = super().infer(name, version, body, header_length, key, arrived)
        except Exception:
            self.calls.append((time.time(), (time.perf_counter() - arrived) * 1000, False))
            self.failed_total += 1
            self._count(name, version or self.serving.table().get(name), None)
            raise
        ms = (time.perf_counter() - arrived) * 1000
        self.calls.append((time.time(), ms, True))
        self.served_total += 1
        self._count(name, out[2], ms)
        return out

    def _count(self, name: str, version: int | None, ms: float | None) -> None:
        s = self.per_version.setdefault((name, version), {"requests": 0, "errors": 0, "latencies_ms": deque(maxlen=200)})
        s["requests"] += 1
        if ms is None:
            s["errors"] += 1
        else:
            s["latencies_ms"].append(round(ms, 3))

    def samples(self) -> dict:
        """Per model, the serving version's request count, errors and recent latencies (the A/B stages' input)."""
        out = {}
        for name, v in self.serving.table().items():
            s = self.per_version.get((name, v))
            if s:
                out[name] = {"version": v, "requests": s["requests"], "errors": s["errors"],
                             "latencies_ms": list(s["latencies_ms"])}
        return out
