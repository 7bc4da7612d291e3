"""Run each configuration in its own fresh worker process, one after another, and collect the rows.

A fresh process per configuration keeps figures from bleeding into each other (allocator
state, thread pools, caches, the memory high-water mark). A worker that crashes, exits
non-zero or runs past its timeout becomes a failed row with the reason (the last line it
wrote to stderr); the other rows are unaffected.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgedeploy.benchmarking.config import BenchConfig

# Which anchor a row's speed-up is stated against: the model's native engine's default first.
REFERENCE_ORDER = ("paddle", "onnxruntime", "openvino")


@dataclass
class BenchResult:
    """One row: the configuration, what was measured (ms, MB, W, items/s), and the ratios."""

    config: BenchConfig
    status: str  # "ok" | "failed"
    reason: str = ""
    model_name: str = ""
    engine_version: str = ""
    load_ms: float | None = None
    first_inference_ms: float | None = None
    cold_start_ms: float | None = None
    latency_ms: dict = field(default_factory=dict)  # p50, p90, p99, mean, std, min, max, runs
    throughput_ips: float | None = None
    cpu_utilisation: float | None = None
    baseline_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    model_memory_mb: float | None = None
    memory_method: str = ""
    power_w: float | None = None
    power_measured: bool = False
    power_source: str = ""
    size_bytes: int | None = None
    accuracy: float | None = None
    accuracy_metric: str | None = None
    system_cpu_others: float | None = None  # share of the CPUs other processes used during the timed runs
    engine_settings: dict = field(default_factory=dict)  # what the engine was set to, read back from it
    notes: list[str] = field(default_factory=list)
    anchor_scheme: str | None = None  # the anchor the ratios are against
    speedup: float | None = None  # anchor p50 / this p50
    memory_ratio: float | None = None  # this model memory / anchor model memory
    speedup_same_engine: float | None = None  # against this engine's own default
    size_ratio: float | None = None  # anchor (source) model files / this row's model files: 3.5 = 3.5x smaller

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def scheme(self) -> str:
        return self.config.scheme

    @property
    def p50(self) -> float | None:
        return self.latency_ms.get("p50")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        d["scheme"] = self.scheme
        return d

    def flat(self) -> dict:
        """One level deep, for CSV: config fields, then measurements, latency as ``p50_ms``..."""
        c = self.config
        row = {"model": self.model_name, "shape": c.shape_str, "engine": c.engine, "precision": c.precision,
               "threads": c.threads, "batch": c.batch, "concurrency": c.concurrency, "anchor": c.untuned,
               "scheme": self.scheme, "model_file": c.model, "source": c.source}
        d = asdict(self)
        for k in ("config", "latency_ms", "notes", "engine_settings"):
            d.pop(k)
        row.update({f"{k}_ms": v for k, v in self.latency_ms.items() if k != "runs"})
        row["runs"] = self.latency_ms.get("runs")
        row.update(d)
        row["notes"] = "; ".join(self.notes)
        return row


def _model_label(cfg: BenchConfig) -> str:
    name = cfg.compared_model
    return Path(name).stem if Path(name).suffix else name


def _failure_reason(stderr: str, returncode: int) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in stderr.splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    last = last.removeprefix("error: ")
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        return f"worker killed by {sig}" + (f": {last}" if last else "")
    return last or f"worker exited with code {returncode} and no message"


def run_one(cfg: BenchConfig, *, python: str = sys.executable) -> BenchResult:
    """Measure ``cfg`` in a fresh worker process; a failure of any kind is a failed row."""
    env = {**os.environ, "GLOG_minloglevel": "2", "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run([python, "-m", "edgedeploy.benchmarking.worker"], input=json.dumps(cfg.to_dict()),
                              capture_output=True, text=True, timeout=cfg.timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return BenchResult(cfg, "failed", f"timed out after {cfg.timeout_s:g} s", model_name=_model_label(cfg))
    if proc.returncode != 0:
        return BenchResult(cfg, "failed", _failure_reason(proc.stderr, proc.returncode), model_name=_model_label(cfg))
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return BenchResult(cfg, "failed", f"worker wrote no result: {_failure_reason(proc.stderr, 0)}",
                           model_name=_model_label(cfg))
    data.pop("status", None)
    data.pop("scheme", None)
    return BenchResult(cfg, "ok", **data)


def add_ratios(results: list[BenchResult]) -> list[BenchResult]:
    """Set each row's speed-up, memory and size ratios against the anchor of the same model and shape.

    A row with a ``source`` (an optimised file standing for a source model) is compared with
    the anchors of that source. The reference anchor is the model's native engine untuned (Paddle Inference for Paddle
    models, else ORT), or OpenVINO's default when that is the only one that ran.
    """
    anchors: dict[tuple, dict[str, BenchResult]] = {}
    for r in results:
        if r.ok and r.config.untuned:
            anchors.setdefault((r.config.compared_model, r.config.shape), {})[r.config.engine] = r
    for r in results:
        found = anchors.get((r.config.compared_model, r.config.shape), {})
        ref = next((found[e] for e in REFERENCE_ORDER if e in found), None)
        if not r.ok or ref is None:
            continue
        r.anchor_scheme = ref.scheme
        r.speedup = ref.p50 / r.p50 if r.p50 else None
        if ref.model_memory_mb:
            r.memory_ratio = r.model_memory_mb / ref.model_memory_mb
        if ref.size_bytes and r.size_bytes:
            r.size_ratio = ref.size_bytes / r.size_bytes
        same = found.get(r.config.engine)
        if same is not None and r.p50:
            r.speedup_same_engine = same.p50 / r.p50
    return results


def run_bench(configs: list[BenchConfig], *, progress: Callable[[int, int, BenchConfig], None] | None = None,
              python: str = sys.executable) -> list[BenchResult]:
    """Run every config (sequentially, one fresh process each) and return the rows with ratios.

    ``progress(i, total, config)`` is called before config ``i`` starts and once more at the end.
    """
    results = []
    for i, cfg in enumerate(configs):
        if progress:
            progress(i, len(configs), cfg)
        results.append(run_one(cfg, python=python))
    if progress:
        progress(len(configs), len(configs), None)
    return add_ratios(results)
