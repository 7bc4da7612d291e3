"""The one latency helper: runs counted, budget honoured, the noise band brackets the median."""

from __future__ import annotations

import numpy as np

from edgedeploy import engines
from edgedeploy.engines.timing import Timing, quantile_interval, time_runs


def test_time_runs_counts_warmup_and_runs():
    calls = []
    t = time_runs(calls.append, {}, runs=7, warmup=2)
    assert len(calls) == 9 and t.runs == 7 and len(t.times_ms) == 7


def test_a_budget_stops_early_after_the_minimum():
    t = time_runs(lambda f: None, {}, runs=10_000_000, budget_s=0.0)
    assert t.runs == 3


def test_the_interval_brackets_the_median_and_narrows_with_runs():
    rng = np.random.default_rng(0)
    few, many = rng.lognormal(1, 0.3, 10), rng.lognormal(1, 0.3, 400)
    for x in (few, many):
        lo, hi = quantile_interval(x, 50)
        assert lo <= np.median(x) <= hi
    assert np.subtract(*quantile_interval(many, 50)[::-1]) < np.subtract(*quantile_interval(few, 50)[::-1])
    d = Timing(tuple(many), 1.0).to_dict()
    assert d["p50_low"] <= d["p50"] <= d["p50_high"] and d["runs"] == 400


def test_open_default_is_the_same_session_as_open(tiny_onnx, image_batch):
    for engine in [e for e in ("onnxruntime", "openvino") if engines.available(e)]:
        with engines.open(tiny_onnx, engine=engine) as tuned, engines.open_default(tiny_onnx, engine) as anchor:
            assert type(tuned) is type(anchor)
            assert [i.name for i in tuned.inputs] == [i.name for i in anchor.inputs]  # one tensor mapping
            np.testing.assert_allclose(anchor.run({"input": image_batch})["output"],
                                       tuned.run({"input": image_batch})["output"], atol=1e-2)
            assert anchor.time({"input": image_batch}, runs=3).runs == 3
