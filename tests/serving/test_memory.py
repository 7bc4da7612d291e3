"""The memory manager on models whose weights really take memory: lazy loads, measured footprints,
LRU eviction within a budget, memory given back on unload, shared weights and threads."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgedeploy.serving import MemoryManager, Repository
from edgedeploy.serving.memory import BudgetExceeded
from tests.serving.conftest import add_big

MB = 1 << 20


@pytest.fixture
def big_repo(tmp_path):
    root = tmp_path / "repo"
    for name in ("a", "b", "c"):
        add_big(root, name, mb=16)
    return root


def test_loads_lazily_measures_and_gives_memory_back(big_repo):
    m = MemoryManager(Repository(big_repo))
    assert m.status() == []
    with m.use("a", 1) as entry, entry.pool.borrow() as s:
        np.testing.assert_array_equal(s.run({"indices": np.array([0, 1])})["values"].shape, (2,))
    # 16 MB of weights: the measured footprint is about that (ORT may hold one extra copy briefly)
    assert 12 * MB < entry.footprint < 48 * MB, entry.footprint
    freed = m.unload("a", 1)
    assert freed > 0.8 * 16 * MB, f"only {freed / MB:.1f} MB came back"
    assert m.status() == [] and m.used() == 0


def test_least_recently_used_model_is_evicted_to_stay_in_budget(big_repo):
    events = []
    m = MemoryManager(Repository(big_repo), budget=45 * MB, on_event=lambda *e: events.append(e[:3]))
    m.load("a", 1)
    m.load("b", 1)
    with m.use("a", 1):
        pass  # a is now more recent than b
    m.load("c", 1)
    assert {(s["name"]) for s in m.status()} == {"a", "c"}
    assert ("evict", "b", 1) in events
    assert m.used() <= 45 * MB


def test_refusal_says_needed_used_and_budget(big_repo):
    m = MemoryManager(Repository(big_repo), budget=30 * MB)
    m.load("a", 1, pin=True)  # pinned: a swap or an A/B test holds it
    with pytest.raises(BudgetExceeded, match=r"needs .* MiB but .* MiB of the 30.0 MiB memory budget is used .*a v1"):
        m.load("b", 1)
    m2 = MemoryManager(Repository(big_repo), budget=8 * MB)
    with pytest.raises(BudgetExceeded, match=r"a v1 needs .* MiB .*more than the whole 8.0 MiB"):
        m2.load("a", 1)
    assert m2.status() == []


def test_instances_share_weights(tmp_path):
    root = tmp_path / "repo"
    add_big(root, "one", mb=16)
    add_big(root, "four", mb=16, config="instances: 4\nwarmup: {indices: '4'}\n")
    m = MemoryManager(Repository(root))
    one, four = m.load("one", 1), m.load("four", 1)
    assert len(four.pool.sessions) == 4 and len({id(s) for s in four.pool.sessions}) == 4
    assert four.footprint < one.footprint + 8 * MB, (one.footprint / MB, four.footprint / MB)
    with four.pool.borrow() as s1, four.pool.borrow() as s2:  # two requests at once, on one set of weights
        assert s1 is not s2
        np.testing.assert_array_equal(s1.run({"indices": np.array([3])})["values"],
                                      s2.run({"indices": np.array([3])})["values"])


def test_models_share_one_thread_pool(tmp_path):
    root = tmp_path / "repo"
    for i in range(4):
        add_big(root, f"m{i}", mb=1)
    m = MemoryManager(Repository(root), threads=2)
    m.load("m0", 1)
    before = len(os.listdir("/proc/self/task"))
    for i in range(1, 4):
        m.load(f"m{i}", 1)
    assert len(os.listdir("/proc/self/task")) - before <= 1  # a pool per session would add a thread each


@pytest.mark.skipif(not __import__("edgedeploy").engines.available("openvino"), reason="openvino not installed")
def test_openvino_instances_are_infer_requests_on_one_compiled_model(tmp_path):
    root = tmp_path / "repo"
    add_big(root, "ov", mb=1, config="engine: openvino\ninstances: 3\nwarmup: {indices: '4'}\n")
    entry = MemoryManager(Repository(root)).load("ov", 1)
    sessions = entry.pool.sessions
    assert len({id(s._compiled) for s in sessions}) == 1 and len({id(s._request) for s in sessions}) == 3
