"""Resolution search on the real PP-OCRv6 detector: scored and timed per size, the smallest within budget."""

from __future__ import annotations

import pytest

from edgedeploy import engines
from edgedeploy.optimize import resolution


@pytest.mark.integration
def test_smallest_size_within_budget_is_chosen_and_reported_apart():
    r = resolution.search(lambda: engines.open_default("ppocrv6-det", "onnxruntime"), sizes=(480, 736),
                          reference=736, n=2, runs=2)
    assert [x.size for x in r.rows] == [480, 736] and all(0.0 <= x.metric <= 1.0 for x in r.rows)
    ref = next(x for x in r.rows if x.size == 736)
    chosen = next(x for x in r.rows if x.size == r.chosen)
    assert 100 * (ref.metric - chosen.metric) <= 0.5 + 1e-9  # within the budget, by the rule
    assert all(100 * (ref.metric - x.metric) > 0.5 for x in r.rows if x.size < r.chosen)  # nothing smaller was
    assert r.speedup == pytest.approx(ref.latency_ms / chosen.latency_ms) and "text 8-12 px" in r.data
