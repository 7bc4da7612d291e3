"""Measure one :class:`BenchConfig` in this (fresh) process: ``python -m edgedeploy.benchmarking.worker``.

Reads one JSON config on stdin, writes one JSON result on stdout; a user mistake is one line
on stderr and exit code 2. Anything the engines print goes to stderr, so stdout stays JSON.

Phases, in order (times in ms, memory in bytes):
1. prepare: import the engine SDK, resolve the model (converting to ONNX if the engine needs it),
   warm the engine up on a one-Conv model (plugins, kernel libraries, thread pools), build the
   input; then the **baseline** RSS is taken — interpreter + ready engine + input, no model.
2. load (open the session) and the first inference; cold start = load + first.
3. warm-up runs, untimed; then timed runs until ``runs`` or ``time_budget_s`` → p50/p90/p99/mean/std,
   each percentile with its 95% interval (:mod:`edgedeploy.engines.timing`), with power and CPU
   utilisation measured over this phase.
4. throughput: items/s from the timed runs; with ``concurrency > 1``, N threads each with their
   own request (sharing the compiled model where the engine allows) over a second phase.
Model-attributable memory = peak RSS from the baseline on − the baseline.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import os
import sys
import threading
import time
import warnings

import numpy as np
import psutil

from edgedeploy.benchmarking.config import BenchConfig
from edgedeploy.benchmarking.memory import PeakRss, rss_bytes
from edgedeploy.engines.timing import time_runs
from edgedeploy.errors import UserError

MB = 1 << 20


def _sdk_version(engine: str) -> str:
    from edgedeploy import engines

    mod = importlib.import_module(engines.spec(engine).package)
    return str(getattr(mod, "__version__", "unknown"))


def _open(cfg: BenchConfig, model):
    """The session for the config: the engine's anchor (``open_default``), or as tuned with ``cfg.options``."""
    from edgedeploy import engines

    if cfg.untuned:
        return engines.open_default(model, cfg.engine)
    return engines.open(model, engine=cfg.engine, options=cfg.options)


def _feeds(session, x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The image-like input for the first input; seeded random values for any others."""
    rng = np.random.default_rng(seed)
    feeds = {session.inputs[0].name: x}
    for spec in session.inputs[1:]:
        dims = tuple(d or 1 for d in spec.shape)
        feeds[spec.name] = (rng.standard_normal(dims) if np.issubdtype(spec.dtype, np.floating)
                            else rng.integers(0, 2, dims)).astype(spec.dtype)
    return feeds


def _concurrent(session, feeds, threads: int, runs: int, budget_s: float | None) -> tuple[int, float]:
    """(requests completed, wall seconds) with ``threads`` threads, each with its own request
    (another instance of the session, sharing its weights)."""
    runners = [session.clone_instance().run for _ in range(threads)]
    counts = [0] * threads
    per_thread = max(runs // threads, 2)
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        barrier.wait()
        counts[i] = time_runs(runners[i], feeds, runs=per_thread, budget_s=budget_s).runs

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return sum(counts), time.perf_counter() - start


MIN_CPU_SECONDS = 0.5  # CPU time is counted in clock ticks (10 ms): a shorter phase cannot tell load apart


def _other_load(before, after, own: float) -> float | None:
    """Share of all CPUs busy with other processes between two system-wide ``psutil.cpu_times()``
    (None when the phase was too short to tell)."""
    busy = lambda t: sum(t) - t.idle - getattr(t, "iowait", 0.0)  # noqa: E731
    total = sum(after) - sum(before)
    return max(0.0, (busy(after) - busy(before)) / total - own) if total >= MIN_CPU_SECONDS else None


def measure(cfg: BenchConfig) -> dict:
    """Run every phase for ``cfg`` in this process and return the result as a JSON-ready dict."""
    from edgedeploy import engines
    from edgedeploy.benchmarking import power
    from edgedeploy.ingest import load_model
    from edgedeploy.parity import image_like_input

    if not engines.available(cfg.engine):
        raise UserError(f"engine {cfg.engine!r} is not installed: {engines.spec(cfg.engine).install}")
    importlib.import_module(engines.spec(cfg.engine).module)
    engines.warm_up(cfg.engine)  # the engine's own libraries, plugins and threads belong to the baseline
    model = load_model(cfg.model)
    if cfg.source is not None:  # a derived file (e.g. INT8) standing for its source: input, labels, name
        source = load_model(cfg.source)
        model = dataclasses.replace(model, name=source.name, zoo=source.zoo or model.zoo)
    if model.format not in engines.spec(cfg.engine).formats:
        model.onnx_path()  # conversion is preparation, not load time
    x = image_like_input(model, cfg.shape, cfg.seed)
    gc.collect()
    baseline = rss_bytes()
    peak = PeakRss().start()

    t = time.perf_counter()
    session = _open(cfg, model)
    load_ms = (time.perf_counter() - t) * 1000
    feeds = _feeds(session, x, cfg.seed)
    t = time.perf_counter()
    session.run(feeds)
    first_ms = (time.perf_counter() - t) * 1000
    for _ in range(cfg.warmup):
        session.run(feeds)
    system0 = psutil.cpu_times()
    with power.measure() as watts:
        timing = session.time(feeds, runs=cfg.runs, budget_s=cfg.time_budget_s)
    others = _other_load(system0, psutil.cpu_times(), watts.utilisation)
    throughput = cfg.batch * timing.runs / timing.wall_s
    if cfg.concurrency > 1:
        done, cwall = _concurrent(session, feeds, cfg.concurrency, cfg.runs, cfg.time_budget_s)
        throughput = cfg.batch * done / cwall
    peak_bytes = peak.peak()
    peak.stop()

    accuracy = metric = None
    if cfg.dataset:
        metric, accuracy = _accuracy(session, model, cfg)
    return {
        "status": "ok", "scheme": cfg.scheme, "model_name": model.name, "engine_version": _sdk_version(cfg.engine),
        "load_ms": load_ms, "first_inference_ms": first_ms, "cold_start_ms": load_ms + first_ms,
        "latency_ms": timing.to_dict(),
        "throughput_ips": throughput, "cpu_utilisation": watts.utilisation,
        "baseline_rss_mb": baseline / MB, "peak_rss_mb": peak_bytes / MB,
        "model_memory_mb": max(peak_bytes - baseline, 0) / MB, "memory_method": peak.method,
        "power_w": watts.watts, "power_measured": watts.measured, "power_source": watts.source,
        "size_bytes": model.size_bytes(), "accuracy": accuracy, "accuracy_metric": metric,
        "system_cpu_others": others, "engine_settings": dict(session.settings),
        "notes": list(getattr(session, "notes", [])) + ([
            f"other processes used {others:.0%} of the CPUs during the timed runs: figures are noisy"]
            if others and others > 0.1 else []),
    }


def _accuracy(session, model, cfg: BenchConfig) -> tuple[str | None, float | None]:
    from edgedeploy.benchmarking.accuracy import measure_accuracy

    try:
        return measure_accuracy(session, model, cfg.dataset, cfg.samples, cfg.seed)
    except UserError as exc:  # no ground truth for this model: the speed figures still stand
        return f"n/a: {exc}", None


def main() -> int:
    # Engines' C++ code may print to stdout: point fd 1 at stderr and keep a private copy for the result.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.simplefilter("ignore")
    try:
        cfg = BenchConfig.from_dict(json.loads(sys.stdin.read()))
        result = measure(cfg)
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    os.write(result_fd, (json.dumps(result) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
