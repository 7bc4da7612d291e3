"""Hot updates: which version serves each model, and switching it with no failed request.

A new version (dropped into the repository or uploaded) is loaded beside the serving one and
warmed up, then checked: it loads, it runs, its inputs and outputs match the serving version's
(names, dtypes, output shapes on the same warm-up input), its outputs stay within the config's
``max_output_diff`` of the serving version's, and an optional ``check(session)`` (e.g. accuracy
on task data) passes. Only then does the pointer switch — one assignment under a lock — and the
old version is unloaded once its in-flight requests finish. Any failure leaves the old version
serving; the failure is logged, counted and kept in :attr:`Serving.failures`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from edgedeploy.engines import Session
from edgedeploy.errors import UserError
from edgedeploy.serving.memory import MemoryManager, warmup_feeds
from edgedeploy.serving.repository import Repository, fingerprint, settled
from edgedeploy.serving.state import ACCEPTED, QUARANTINED, REJECTED, State

log = logging.getLogger(__name__)

Check = Callable[[str, int, Session], "str | None"]  # (model, version, session) → None if fine, else why not


@dataclass
class SwapResult:
    model: str
    old: int | None
    new: int
    ok: bool
    reason: str = ""
    checks: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


class Serving:
    """The version each model serves by default, and hot updates between versions."""

    def __init__(self, repo: Repository, manager: MemoryManager, *, check: Check | None = None,
                 on_result: Callable[[SwapResult], None] | None = None, state: State | None = None,
                 settle_s: float = 2.0):
        self.repo, self.manager, self.check = repo, manager, check
        self.on_result = on_result or (lambda r: None)
        self.state = state if state is not None else State(repo.root)
        self.settle_s = settle_s
        self.pending: set[tuple[str, int]] = set()  # version directories still being written
        self._current: dict[str, int] = {}
        self.failures: dict[tuple[str, int], SwapResult] = {}
        self.history: list[SwapResult] = []
        self.held: set[str] = set()  # models under an A/B test: no automatic update until it ends
        self._lock = threading.Lock()
        self._swap_lock = threading.Lock()  # one swap at a time
        self.refresh()

    def hold(self, name: str, held: bool = True) -> None:
        """Stop (or resume) automatic updates of ``name``, e.g. while an A/B test runs; waits for a swap in progress."""
        with self._swap_lock:
            (self.held.add if held else self.held.discard)(name)

    def current(self, name: str) -> int:
        with self._lock:
            v = self._current.get(name)
        if v is None:
            v = self._initial(name)  # a model added since start-up (raises for an unknown one)
            with self._lock:
                v = self._current.setdefault(name, v)
        return v

    def _initial(self, name: str) -> int:
        """The version to serve when nothing serves ``name`` yet: the one that served before the restart,
        else the newest complete version that is not rejected (else the newest, to report its error)."""
        versions = self.repo.versions(name)
        if not versions:
            return self.repo.latest(name)  # raises "unknown model"
        before = self.state.serving(name)
        if before in versions and not self.state.blocked(name, before):
            return before
        ok = [v for v in versions if not self.state.blocked(name, v)]
        done = [v for v in ok if settled(self.repo.root / name / str(v), self.settle_s)]
        for v in reversed(done or ok):
            try:  # config, model file, no symlink out, and the signature where one is required; loads come later
                self.repo.version(name, v, verify=self.repo.trusted_keys is not None)
                return v
            except UserError as exc:
                reason = str(exc).splitlines()[0][:500]
                log.warning("%s v%d quarantined: %s", name, v, reason)
                self.state.set_verdict(name, v, QUARANTINED, reason,
                                       fingerprint=fingerprint(self.repo.root / name / str(v)))
        return versions[-1]

    def blocked(self, name: str, version: int) -> bool:
        return self.state.blocked(name, version)

    def admit(self, name: str, version: int) -> dict | None:
        """An operator re-admits a rejected or quarantined version: the next scan may serve it."""
        self.repo.versions(name)
        with self._lock:
            self.failures.pop((name, version), None)
        self.repo.forget(name, version)
        return self.state.admit(name, version)

    def reject(self, name: str, version: int, reason: str) -> None:
        """Mark ``version`` rejected (persisted): it will not serve until re-admitted."""
        self.state.set_verdict(name, version, REJECTED, reason)

    def table(self) -> dict[str, int]:
        with self._lock:
            return dict(self._current)

    def set_current(self, name: str, version: int) -> int | None:
        """Point ``name`` at ``version`` (atomically); returns the version it served before."""
        with self._lock:
            old = self._current.get(name)
            self._current[name] = version
        self.state.set_serving(name, version)
        self.manager.retire(name, version, False)
        return old

    def refresh(self) -> list[SwapResult]:
        """Look at the repository: serve new models at their latest version; hot-update the ones
        that gained a newer version (unless that version already failed its checks)."""
        results = []
        for name in self.repo.names():
            if name in self.held:
                continue
            try:  # one bad entry is reported and skipped; the other models keep updating
                result = self._refresh_one(name)
            except UserError as exc:
                self.repo._problem(name, str(exc).splitlines()[0])
                continue
            if result is not None:
                results.append(result)
        return results

    def _refresh_one(self, name: str) -> SwapResult | None:
        with self._lock:
            cur = self._current.get(name)
        if cur is None:
            self.current(name)
            return None
        for v in reversed(self.repo.versions(name)):
            if v <= cur:
                return None
            path = self.repo.root / name / str(v)
            if self.state.blocked(name, v, fingerprint(path)):
                continue  # rejected (and unchanged since): never again until re-admitted
            if not settled(path, self.settle_s):
                self.pending.add((name, v))  # still being copied in: look again on the next scan
                return None
            self.pending.discard((name, v))
            return self.update(name, v, fingerprint=fingerprint(path))
        return None

    def update(self, name: str, new: int, *, fingerprint: str | None = None) -> SwapResult:
        """Load, warm up and check ``new``; switch to it and unload the old one, or keep the old one.

        The verdict is persisted: a refused version is ``rejected`` (with the directory's
        ``fingerprint``, when the watcher found it, so a copy that was still going on is retried
        once it changes) and never serves until re-admitted."""
        with self._swap_lock:
            t0 = time.perf_counter()
            old = self.current(name)
            result = SwapResult(name, old, new, ok=False)
            pinned = False
            try:
                if new == old:
                    raise UserError(f"{name} already serves version {new}")
                entry = self.manager.load(name, new, pin=True)
                pinned = True
                result.checks.append("loads and runs its warm-up input")
                self._compare(name, old, entry.session, result)
                if self.check is not None:
                    why = self.check(name, new, entry.session)
                    if why:
                        raise UserError(f"custom check failed: {why}")
                    result.checks.append("custom check")
            except Exception as exc:  # any failure keeps the old version serving
                result.reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
                self.failures[(name, new)] = result
                self.repo.forget(name, new)
                self.state.set_verdict(name, new, REJECTED, result.reason, fingerprint=fingerprint)
                if pinned:
                    self.manager.pin(name, new, -1)
                    self.manager.unload(name, new)
                log.warning("hot update of %s to v%d refused, v%s keeps serving: %s", name, new, old, result.reason)
            else:
                self.state.set_verdict(name, new, ACCEPTED, "; ".join(result.checks))
                self.set_current(name, new)
                self.manager.pin(name, new, -1)
                self.manager.retire(name, old)
                self.manager.unload(name, old)  # waits for requests already running on it
                result.ok = True
                log.info("%s: v%d now serving (was v%s)", name, new, old)
            result.duration_ms = (time.perf_counter() - t0) * 1000
            self.history.append(result)
            del self.history[:-100]
            self.on_result(result)
            return result

    def _compare(self, name: str, old: int, new: Session, result: SwapResult) -> None:
        try:
            self.manager.load(name, old)
        except UserError as exc:  # a serving version that cannot load is no reference: say so
            result.checks.append(f"serving v{old} does not load ({str(exc)[:120]}); not compared")
            return
        with self.manager.use(name, old) as ref_entry, ref_entry.pool.borrow(timeout=60) as ref:
            if [(s.name, s.dtype) for s in ref.inputs] != [(s.name, s.dtype) for s in new.inputs]:
                raise UserError(f"inputs differ: serving v{old} takes {[s.to_dict() for s in ref.inputs]}, "
                                f"the new version {[s.to_dict() for s in new.inputs]}")
            if [s.name for s in ref.outputs] != [s.name for s in new.outputs]:
                raise UserError(f"outputs differ: v{old} gives {[s.name for s in ref.outputs]}, "
                                f"the new version {[s.name for s in new.outputs]}")
            feeds = warmup_feeds(ref, ref_entry.mv.config.warmup)
            want = ref.run(feeds)
        got = new.run(feeds)
        for k, a in want.items():
            if got[k].shape != a.shape or got[k].dtype != a.dtype:
                raise UserError(f"output {k!r} is {got[k].dtype} {list(got[k].shape)} where v{old} gives "
                                f"{a.dtype} {list(a.shape)} on the same input")
        result.checks.append("inputs, outputs and output shapes match the serving version")
        limit = self.repo.version(name, result.new, verify=False).config.max_output_diff
        diff = max((float(np.max(np.abs(got[k].astype(np.float64) - a))) for k, a in want.items() if a.size), default=0.0)
        if limit is not None:
            if not diff <= limit:
                raise UserError(f"outputs differ from v{old} by up to {diff:.3g} on the warm-up input "
                                f"(max_output_diff {limit:g})")
            result.checks.append(f"outputs within {limit:g} of the serving version (max {diff:.3g})")


class Watcher:
    """Rescans the repository when ``watchfiles`` reports a change under it, and every
    ``interval_s`` seconds while a version directory is still settling (or as a fallback)."""

    def __init__(self, serving: Serving, interval_s: float):
        self.serving, self.interval_s = serving, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="repo-watcher", daemon=True)

    def start(self) -> Watcher:
        if self.interval_s > 0:
            self._thread.start()
        return self

    def _scan(self) -> None:
        try:
            self.serving.refresh()
        except Exception:  # a bug in one scan must not stop the watcher; it is logged with its traceback
            log.exception("repository scan failed")

    def _loop(self) -> None:
        from watchfiles import watch

        ms = max(int(self.interval_s * 1000), 50)
        root = self.serving.repo.root

        def visible(change, path: str) -> bool:  # not our state file, A/B samples, uploads in progress
            parts = Path(path).relative_to(root).parts
            return bool(parts) and not parts[0].startswith(".")

        try:
            # yield_on_timeout: an empty batch every interval_s, to retry directories that were settling
            for _ in watch(root, stop_event=self._stop, rust_timeout=ms, yield_on_timeout=True, watch_filter=visible,
                           debounce=min(ms, 400), recursive=True, raise_interrupt=False):
                if self._stop.is_set():
                    return
                self._scan()
        except (OSError, RuntimeError) as exc:  # no file notifications here (or the watch broke): poll instead
            log.warning("watching %s failed (%s); polling every %g s instead", root, exc, self.interval_s)
            while not self._stop.wait(self.interval_s):
                self._scan()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
