"""Several models in a memory budget: lazy loads, measured footprints, LRU eviction, shared weights.

Method: a model's footprint is the growth of this process's resident set (RSS) across its load
and warm-up, with loads serialised so that one load is measured at a time (requests running
other models at that moment add noise, which is why the figure is re-measured at every load).
Unloading releases the engine's session, runs the garbage collector and asks glibc to hand
freed pages back to the OS (``malloc_trim``), so the memory really comes back; the RSS drop is
recorded. Instances of one model are handles on one loaded model (:meth:`Session.clone_instance`),
so they share its weights; every ONNX Runtime session runs on one shared thread pool.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import psutil

from edgedeploy import engines
from edgedeploy.engines import EngineOptions, Session
from edgedeploy.errors import UserError
from edgedeploy.units import fmt_bytes
from edgedeploy.serving.repository import ModelVersion, Repository

log = logging.getLogger(__name__)

def fmt_mb(n: int | float) -> str:
    return fmt_bytes(n)


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def give_back_memory() -> None:
    """Collect garbage and return freed heap pages to the OS (glibc keeps them otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps what it keeps
        pass


def configure_allocator(mmap_threshold: int = 256 << 10) -> bool:
    """Make glibc serve every block over ``mmap_threshold`` bytes with its own mapping, returned to the
    OS as soon as it is freed. By default glibc raises that threshold after the first large free, so
    activation buffers end up in heaps that never shrink: a server that runs big models keeps their
    peak. Process-wide: call once, in the serving process. False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, mmap_threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def huge_pages_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with glibc's transparent-huge-page tunable added, for starting
    a server process. glibc (2.35+) then marks every block it maps on its own (those over the mmap
    threshold, see :func:`configure_allocator`) ``MADV_HUGEPAGE``, so the kernel backs it with 2 MiB
    pages where it can. That is what makes ONNX Runtime's ``memory_optimization`` cheap on big inputs:
    without an arena, each run maps its planned activation block afresh (PicoDet 800x608: 46 MiB) and
    pays a page fault per 4 KiB page (~12,000 a run); with huge pages, about 25. The memory between
    runs is the same (the block is unmapped after each run). glibc reads tunables only when a process
    starts, hence an environment for a new process rather than a call."""
    env = dict(os.environ if env is None else env)
    have = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb=")]
    env["GLIBC_TUNABLES"] = ":".join([*have, HUGE_PAGES_TUNABLE])
    return env


def huge_pages_active() -> bool:
    """Whether this process started with :data:`HUGE_PAGES_TUNABLE` and the kernel gives huge pages to
    memory that asks for them (transparent_hugepage ``always`` or ``madvise``)."""
    return HUGE_PAGES_TUNABLE in os.environ.get("GLIBC_TUNABLES", "").split(":") and kernel_huge_pages()


def kernel_huge_pages() -> bool:
    """Whether the kernel backs memory with transparent huge pages when asked (``always``/``madvise``)."""
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[always]" in mode or "[madvise]" in mode


class BudgetExceeded(UserError):
    """A load the memory budget cannot hold (HTTP 507)."""


class VersionRetired(Exception):
    """The version was swapped out: route the request again (to the version now serving)."""


def warmup_feeds(session: Session, shapes: dict[str, str] | None) -> dict[str, np.ndarray]:
    """Deterministic warm-up input: the config's shapes, else the model's (dynamic dims 1 or 224)."""
    if not shapes:
        return session.example_feeds(seed=0)
    feeds = {}
    rng = np.random.default_rng(0)
    for spec in session.inputs:
        text = shapes.get(spec.name)
        if text is None:
            raise UserError(f"warmup gives no shape for input {spec.name!r}; the model's inputs are "
                            f"{', '.join(s.name for s in session.inputs)}")
        try:
            dims = tuple(int(d) for d in str(text).lower().split("x"))
        except ValueError:
            raise UserError(f"warmup shape {text!r} for {spec.name!r} is not a shape like 1x3x224x224") from None
        feeds[spec.name] = (rng.standard_normal(dims) if np.issubdtype(spec.dtype, np.floating)
                            else rng.integers(0, 2, dims)).astype(spec.dtype)
    return feeds


class InstancePool:
    """The instances of one loaded model; a request borrows one for its run. Requests are served in
    the order they asked: with fewer instances than concurrent requests, none waits behind later ones
    (a plain queue wakes an arbitrary waiter, and under load one request could lose for many seconds)."""

    def __init__(self, sessions: list[Session]):
        self.sessions = sessions
        self._free: collections.deque[Session] = collections.deque(sessions)
        self._waiting: collections.deque[object] = collections.deque()  # one ticket per waiting request
        self._cond = threading.Condition()

    @contextmanager
    def borrow(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            try:
                while not (self._free and self._waiting[0] is ticket):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("no free instance of the model within the request timeout")
                    self._cond.wait(remaining)
                s = self._free.popleft()
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the next in line may take another free instance
        try:
            yield s
        finally:
            with self._cond:
                self._free.append(s)
                self._cond.notify_all()

    def release(self) -> None:
        for s in self.sessions:
            s.release()
        self.sessions = []


@dataclass
class Loaded:
    """A model version in memory."""

    mv: ModelVersion
    pool: InstancePool
    footprint: int  # bytes, measured (see module docstring)
    load_ms: float
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    pinned: int = 0  # held by a swap in progress or an A/B test: never evicted

    @property
    def key(self) -> tuple[str, int]:
        return self.mv.name, self.mv.version

    @property
    def session(self) -> Session:
        return self.pool.sessions[0]


class MemoryManager:
    """Loads model versions on first use within ``budget`` bytes (None: no limit), evicting the
    least recently used idle ones to make room. ``on_event(kind, name, version, nbytes)`` hears
    'load', 'unload' and 'evict' (for metrics)."""

    def __init__(self, repo: Repository, budget: int | None = None, *, threads: int | None = None,
                 on_event: Callable[[str, str, int, int], None] | None = None):
        self.repo = repo
        self.budget = budget
        self.threads = threads
        self.on_event = on_event or (lambda *a: None)
        self._loaded: dict[tuple[str, int], Loaded] = {}
        self._known: dict[tuple[str, int], int] = {}  # last measured footprint: the estimate for a reload
        self._retired: set[tuple[str, int]] = set()  # swapped out: routed requests must not reload them
        self._lock = threading.Lock()  # guards _loaded and the counters
        self._load_lock = threading.Lock()  # one load at a time: a clean measurement, a lower peak

    # -- queries ---------------------------------------------------------------------------
    def used(self) -> int:
        with self._lock:
            return sum(e.footprint for e in self._loaded.values())

    def get(self, name: str, version: int) -> Loaded | None:
        with self._lock:
            return self._loaded.get((name, version))

    def status(self) -> list[dict]:
        with self._lock:
            return [{"name": e.mv.name, "version": e.mv.version, "footprint_bytes": e.footprint,
                     "instances": len(e.pool.sessions), "in_flight": e.in_flight, "pinned": e.pinned > 0,
                     "load_ms": round(e.load_ms, 1), "idle_s": round(time.monotonic() - e.last_used, 1)}
                    for e in sorted(self._loaded.values(), key=lambda e: e.key)]

    # -- use -------------------------------------------------------------------------------
    def retire(self, name: str, version: int, retired: bool = True) -> None:
        """Mark a version swapped out (or back in): ``use(..., routed=True)`` will not load it again."""
        with self._lock:
            (self._retired.add if retired else self._retired.discard)((name, version))

    @contextmanager
    def use(self, name: str, version: int, *, routed: bool = False):
        """Hold ``name``/``version`` loaded (loading it if needed) for the duration of a request.
        ``routed``: the version came from routing, so a retired one raises :class:`VersionRetired`."""
        while True:
            if routed:
                with self._lock:
                    if (name, version) in self._retired and (name, version) not in self._loaded:
                        raise VersionRetired(name, version)
            entry = self.load(name, version)
            with self._lock:
                if self._loaded.get(entry.key) is entry:  # not evicted between load and here
                    entry.in_flight += 1
                    entry.last_used = time.monotonic()
                    break
        try:
            yield entry
        finally:
            with self._lock:
                entry.in_flight -= 1
                entry.last_used = time.monotonic()

    def pin(self, name: str, version: int, delta: int = 1) -> None:
        with self._lock:
            e = self._loaded.get((name, version))
            if e is not None:
                e.pinned = max(0, e.pinned + delta)

    # -- load / unload ---------------------------------------------------------------------
    def load(self, name: str, version: int, *, pin: bool = False) -> Loaded:
        """Load (or find loaded) ``name``/``version``; evicts idle models when the budget needs it."""
        entry = self.get(name, version)
        if entry is None:
            with self._load_lock:
                entry = self.get(name, version) or self._load(name, version)
        if pin:
            self.pin(name, version)
        return entry

    def _load(self, name: str, version: int) -> Loaded:
        mv = self.repo.version(name, version)
        estimate = self._known.get(mv_key := (name, version), mv.model_file.stat().st_size if mv.model_file.is_file()
                                   else mv.size_bytes())
        self._make_room(estimate, mv_key, what=f"{name} v{version}")
        cfg = mv.config
        options = EngineOptions(threads=cfg.threads or self.threads, memory_optimization=cfg.memory_optimization,
                                precision=cfg.precision, shared_threads=cfg.threads is None)
        give_back_memory()
        before = rss_bytes()
        t0 = time.perf_counter()
        first = _open(mv, cfg, options)
        try:
            sessions = [first] + [first.clone_instance() for _ in range(cfg.instances - 1)]
            first.run(warmup_feeds(first, cfg.warmup))
        except BaseException:
            first.release()
            raise
        load_ms = (time.perf_counter() - t0) * 1000
        give_back_memory()
        footprint = max(0, rss_bytes() - before)
        entry = Loaded(mv, InstancePool(sessions), footprint, load_ms)
        self._known[mv_key] = footprint
        if self.budget is not None and footprint > self.budget:
            first.release()
            give_back_memory()
            raise BudgetExceeded(f"{name} v{version} needs {fmt_mb(footprint)} (measured at load), more than the whole "
                                 f"{fmt_mb(self.budget)} memory budget ({fmt_mb(self.used())} used): raise --memory-budget")
        with self._lock:
            self._loaded[mv_key] = entry
        try:
            self._make_room(0, mv_key, what=f"{name} v{version}")
        except BudgetExceeded:
            with self._lock:
                self._loaded.pop(mv_key, None)
            self._release(entry, kind="unload")
            raise BudgetExceeded(f"{name} v{version} needs {fmt_mb(footprint)} (measured at load); "
                                 f"{fmt_mb(self.used())} of the {fmt_mb(self.budget or 0)} budget is held by models "
                                 "in use: raise --memory-budget or unload a model") from None
        log.info("loaded %s v%d: %s in %.0f ms", name, version, fmt_mb(footprint), load_ms)
        self.on_event("load", name, version, footprint)
        return entry

    def _make_room(self, need: int, keep: tuple[str, int], *, what: str) -> None:
        if self.budget is None:
            return
        if need > self.budget:
            raise BudgetExceeded(f"{what} needs {fmt_mb(need)} (at least; measured at its last load or its size on "
                                 f"disk), more than the whole {fmt_mb(self.budget)} memory budget "
                                 f"({fmt_mb(self.used())} used): raise --memory-budget")
        while True:
            with self._lock:
                others = [e for k, e in self._loaded.items() if k != keep]
                used = sum(e.footprint for e in self._loaded.values() if e.key != keep or need == 0)
                if used + need <= self.budget:
                    return
                idle = sorted((e for e in others if e.in_flight == 0 and e.pinned == 0),
                              key=lambda e: (e.last_used, -e.mv.config.load_order))
                if not idle:
                    busy = ", ".join(f"{e.mv.name} v{e.mv.version}" for e in others) or "none"
                    raise BudgetExceeded(f"loading {what} needs {fmt_mb(need)} but {fmt_mb(used)} of the "
                                         f"{fmt_mb(self.budget)} memory budget is used (by models in use: {busy}); "
                                         "raise --memory-budget or unload a model")
                victim = self._loaded.pop(idle[0].key)  # popped under the lock: no request can take it now
            self._release(victim, kind="evict")

    def unload(self, name: str, version: int) -> int:
        """Unload now (after its in-flight requests finish); returns the bytes the process gave back."""
        with self._load_lock:
            while True:
                with self._lock:
                    e = self._loaded.get((name, version))
                    if e is None:
                        return 0
                    if e.in_flight == 0:
                        del self._loaded[(name, version)]
                        break
                time.sleep(0.005)
            return self._release(e, kind="unload")

    def _release(self, e: Loaded, *, kind: str) -> int:
        name, version = e.key
        before = rss_bytes()
        e.pool.release()
        give_back_memory()
        freed = max(0, before - rss_bytes())
        log.info("%s %s v%d: %s given back", "evicted" if kind == "evict" else "unloaded", name, version, fmt_mb(freed))
        self.on_event(kind, name, version, freed)
        return freed

    def close(self) -> None:
        with self._lock:
            entries = list(self._loaded.values())
            self._loaded.clear()
        for e in entries:
            self._release(e, kind="unload")


def _open(mv, cfg, options: EngineOptions):
    """A version's session. A deployment directory (from ``edgedeploy deploy``; its manifest was verified
    when the repository found the version) opens exactly as its recorded plan says: the engine,
    precision, threads and options that were measured. Any other version opens as its config says."""
    import json

    manifest = mv.path / "manifest.json"
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        if isinstance(record, dict) and "plan" in record:
            from edgedeploy.deploy.runtime import deployed_plan

            plan = deployed_plan(mv.path, record)
            log.info("%s v%d: opening its deployment plan (%s %s, %d threads)", mv.name, mv.version,
                     plan.engine.value, plan.precision.value, plan.options.threads)
            return plan.open(base=mv.path)
    return engines.load(str(mv.model_file), engine=cfg.engine, options=options)

