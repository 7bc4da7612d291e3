"""A/B tests on a running server: start, end (persisting the decision), restore after a restart,
and the shadow comparisons. Mixed into :class:`~edgedeploy.serving.model_server.ModelServer`,
whose ``ab``, ``serving``, ``state``, ``manager``, ``repo`` and ``_shadow`` it uses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.serving import ab as ab_mod
from edgedeploy.serving.repository import ModelNotFound, check_name

log = logging.getLogger(__name__)


class ABControl:
    """The A/B part of the model server."""

    def start_ab(self, name: str, baseline: int | None, candidate: int, weight: float, shadow: bool,
                 seed: int | None = None) -> dict:
        if name in self.ab:
            raise UserError(f"an A/B test of {name} is already running; end it first (DELETE /v2/ab/{name})")
        self.serving.hold(name)  # first: no swap may change the serving version under the test
        try:
            return self._start_ab(name, baseline, candidate, weight, shadow, seed)
        except Exception:
            self.serving.hold(name, False)
            raise

    def _start_ab(self, name, baseline, candidate, weight, shadow, seed) -> dict:
        baseline = baseline if baseline is not None else self.serving.current(name)
        test = ab_mod.ABTest(name, baseline, candidate, weight=weight, shadow=shadow, seed=seed)
        for v in (baseline, candidate):
            if self.serving.blocked(name, v):
                raise UserError(f"{name} v{v} was rejected; re-admit it first "
                                f"(POST /v2/repository/models/{name}/versions/{v}/admit)")
        for v in (baseline, candidate):
            self.repo.version(name, v)  # both exist and verify
        self.manager.load(name, baseline, pin=True)
        try:
            self.manager.load(name, candidate, pin=True)
        except Exception:
            self.manager.pin(name, baseline, -1)
            raise
        self.ab[name] = test
        self.state.set_ab(name, {"baseline": baseline, "candidate": candidate, "weight": weight, "shadow": shadow,
                                 "seed": seed})
        return test.to_dict()

    def _restore_ab(self) -> None:
        """Start again the A/B tests that were running before a restart (their configuration; the
        samples gathered before are in ``REPO/.ab/``)."""
        for name, m in self.state.models().items():
            cfg = m.get("ab")
            if cfg and name in self.repo.names() and name not in self.ab:
                try:
                    self.start_ab(name, cfg["baseline"], cfg["candidate"], cfg["weight"], cfg["shadow"], cfg.get("seed"))
                    log.info("A/B test of %s restored: v%s vs v%s", name, cfg["baseline"], cfg["candidate"])
                except UserError as exc:
                    log.warning("A/B test of %s not restored: %s", name, exc)
                    self.state.set_ab(name, None)

    def ab_path(self, name: str) -> Path:
        return self.repo.root / ".ab" / f"{check_name(name)}.json"

    def save_ab(self, name: str) -> dict:
        data = self.ab[name].to_dict()
        from edgedeploy.util import atomic_write

        with atomic_write(self.ab_path(name), "w") as f:
            json.dump(data, f)
        return data

    def end_ab(self, name: str, winner: str | None) -> dict:
        test = self.ab.get(name)
        if test is None:
            raise ModelNotFound(f"no A/B test of {name} is running")
        if winner not in (None, *ab_mod.VARIANTS):
            raise UserError(f"winner {winner!r}: expected baseline or candidate")
        data = self.save_ab(name)
        if winner is not None:
            # The decision is persisted before the test ends: the loser, and any version newer than the
            # winner, are rejected, so neither the watcher nor a restart undoes the operator's choice.
            win = test.version(winner)
            loser = test.version("candidate" if winner == "baseline" else "baseline")
            self.serving.reject(name, loser, f"lost the A/B test against v{win}")
            for v in self.repo.versions(name):
                if v > win and v != loser and not self.serving.blocked(name, v):
                    self.serving.reject(name, v, f"passed over: the A/B test of {name} chose v{win}")
            old = self.serving.set_current(name, win)
            if old is not None and old != win:
                self.manager.retire(name, old)
        del self.ab[name]
        self.state.set_ab(name, None)
        self.serving.hold(name, False)
        for variant in ab_mod.VARIANTS:
            self.manager.pin(name, test.version(variant), -1)
        return data




    def _shadow_compare(self, test: ab_mod.ABTest, inputs, outputs) -> None:
        if not self._shadow_backlog.acquire(blocking=False):
            return  # the baseline cannot keep up: skip this comparison rather than queue without bound

        def run():
            try:
                v = test.version("baseline")
                with self.manager.use(test.model, v) as entry, entry.pool.borrow(timeout=60) as s:
                    ref = s.run(inputs)
                test.record_agreement(*ab_mod.compare_outputs(ref, outputs))
            except Exception as exc:
                log.warning("A/B shadow run of %s failed: %s", test.model, exc)
            finally:
                self._shadow_backlog.release()
        try:
            self._shadow.submit(run)
        except RuntimeError:  # shutting down
            self._shadow_backlog.release()
