"""The memory manager on models whose weights really take memory: lazy loads, measured footprints,
LRU eviction within a budget, memory given back on unload, shared weights and threads."""

from __future__ import annotations

import os
import re

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


def test_memory_optimization_is_chosen_per_model(tmp_path):
    """A large model without the arena (its activations go back after each run) beside a small one
    that keeps it (per-run allocation would cost the small model more than its few MB): each model's
    config.yaml decides for its own ONNX Runtime session."""
    root = tmp_path / "repo"
    add_big(root, "large", mb=1)  # memory_optimization defaults to on in the repository
    add_big(root, "small", mb=1, config="memory_optimization: false\nwarmup: {indices: '4'}\n")
    m = MemoryManager(Repository(root), threads=2)
    large, small = m.load("large", 1), m.load("small", 1)
    lo, so = (e.session._sess.get_session_options() for e in (large, small))
    assert not lo.enable_cpu_mem_arena and lo.enable_mem_pattern
    assert so.enable_cpu_mem_arena and so.enable_mem_pattern
    for e in (large, small):
        with m.use(e.mv.name, 1) as entry, entry.pool.borrow() as s:
            assert s.run({"indices": np.array([0, 1])})["values"].shape == (2,)


def test_huge_pages_environ_adds_the_tunable_and_keeps_the_others():
    from edgedeploy.serving.memory import HUGE_PAGES_TUNABLE, huge_pages_environ

    base = {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"}
    env = huge_pages_environ(base)
    assert env["PATH"] == "/bin" and base["GLIBC_TUNABLES"].endswith("hugetlb=0")  # a copy, not the caller's
    assert env["GLIBC_TUNABLES"].split(":") == ["glibc.malloc.arena_max=2", HUGE_PAGES_TUNABLE]
    assert huge_pages_environ({})["GLIBC_TUNABLES"] == HUGE_PAGES_TUNABLE


_HUGE_PAGES_CHILD = """
import ctypes, json, re
from edgedeploy.serving.memory import configure_allocator, huge_pages_active

configure_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
n = 64 << 20
block = libc.malloc(n)  # one large block through glibc, as an engine allocates (numpy would madvise it itself)
ctypes.memset(block, 1, n)  # every page touched
text = open("/proc/self/smaps_rollup").read()
print(json.dumps({"active": huge_pages_active(), "huge": int(re.search(r"AnonHugePages:\\s+(\\d+)", text).group(1)) << 10}))
"""


def _thp_mode() -> str:
    try:
        return re.search(r"\[(\w+)\]", open("/sys/kernel/mm/transparent_hugepage/enabled").read()).group(1)
    except (OSError, AttributeError):
        return "unavailable"


def _glibc() -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in os.confstr("CS_GNU_LIBC_VERSION").split()[1].split(".")[:2])
    except (ValueError, OSError, IndexError, AttributeError):
        return (0,)


@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"), reason="the kernel gives no transparent huge pages")
@pytest.mark.skipif(_glibc() < (2, 35), reason="glibc.malloc.hugetlb needs glibc 2.35 or later")
def test_a_process_started_with_huge_pages_environ_gets_huge_pages_for_large_blocks():
    """Real glibc, real kernel: a 64 MiB block in a process started with the tunable lies mostly in
    2 MiB pages; without it (kernel mode ``madvise``) in none."""
    import json
    import subprocess
    import sys

    from edgedeploy.serving.memory import huge_pages_environ

    def child(env):
        out = subprocess.run([sys.executable, "-c", _HUGE_PAGES_CHILD], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    with_hp = child(huge_pages_environ())
    without = child({k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"})
    assert with_hp["active"] and not without["active"]
    assert with_hp["huge"] >= 32 << 20, with_hp  # most of the 64 MiB
    if _thp_mode() == "madvise":
        assert without["huge"] < 4 << 20, without  # only memory that asks for huge pages gets them


def test_requests_get_an_instance_in_the_order_they_asked(tmp_path):
    """One instance, six requests queued behind a held one, and a seventh arriving just as it is given
    back: they run first come, first served; the late one does not jump the queue."""
    import threading
    import time

    root = tmp_path / "repo"
    add_big(root, "m", mb=1)  # one instance
    pool = MemoryManager(Repository(root)).load("m", 1).pool
    order: list = []

    def request(i):
        with pool.borrow(timeout=60) as s:
            order.append(i)
            s.run({"indices": np.array([i if isinstance(i, int) else 0])})

    threads = []
    with pool.borrow():
        for i in range(6):
            threads.append(threading.Thread(target=request, args=(i,)))
            threads[-1].start()
            deadline = time.monotonic() + 30
            while len(pool._waiting) < i + 1:  # queued before the next one starts
                assert time.monotonic() < deadline, "a request never started waiting"
                time.sleep(0.001)
    request("late")
    for t in threads:
        t.join(timeout=60)
    assert order == [0, 1, 2, 3, 4, 5, "late"]
    with pool.borrow(timeout=0.05):
        with pytest.raises(TimeoutError, match="no free instance"):
            with pool.borrow(timeout=0.05):
                pass
    assert not pool._waiting  # a request that gave up leaves the queue


@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"), reason="the kernel gives no transparent huge pages")
def test_serve_restarts_itself_with_huge_pages_unless_told_not_to(repo):
    """`edgedeploy serve` as users start it: the process answering HTTP carries the tunable."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from edgedeploy.serving.memory import HUGE_PAGES_TUNABLE

    def start(*extra):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        exe = Path(sys.executable).with_name("edgedeploy")
        proc = subprocess.Popen([str(exe), "serve", str(repo), "--port", str(port), "--poll", "0", *extra], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        proc.terminate()
        proc.wait(timeout=30)
        tunables = next((e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"GLIBC_TUNABLES=")), "")
        return tunables.split(":")

    assert HUGE_PAGES_TUNABLE in start()  # same pid: exec replaced the process
    assert HUGE_PAGES_TUNABLE not in start("--no-huge-pages")
