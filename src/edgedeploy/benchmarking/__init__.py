"""Benchmarks: each configuration in a fresh process, measured against the engines' own defaults.

>>> from edgedeploy import benchmarking as bench
>>> configs, skipped = bench.plan(["pplcnet-orientation"], engine_names=["onnxruntime", "openvino"],
...                               precisions=["fp32", "bf16"], threads=[2], runs=50)
>>> results = bench.run_bench(configs)
>>> print(bench.report.to_markdown(results, skipped))

Modules, one job each: :mod:`config` (one typed row), :mod:`plan` (the matrix and its checks),
:mod:`worker` (measures one config in its own process; an anchor is the engine opened
untuned, as users would, by the engine's own ``open_default``), :mod:`memory` (peak RSS), :mod:`power` (sensors or an estimate),
:mod:`accuracy` (task accuracy on generated data), :mod:`runner` (processes, failures,
ratios), :mod:`report` (table, JSON, CSV, Markdown, PNG).
"""

from edgedeploy.benchmarking import report
from edgedeploy.benchmarking.config import ANCHOR_LABELS, PRECISIONS, BenchConfig
from edgedeploy.benchmarking.plan import Skipped, plan, resolve_shape
from edgedeploy.benchmarking.runner import BenchResult, add_ratios, run_bench, run_one

__all__ = ["ANCHOR_LABELS", "PRECISIONS", "BenchConfig", "BenchResult", "Skipped", "add_ratios",
           "plan", "report", "resolve_shape", "run_bench", "run_one"]
