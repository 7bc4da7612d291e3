"""Durable serving state beside the repository: ``REPO/.edgedeploy-state.json``.

What must survive a restart, so that a restart serves exactly what served before:

- per model, the version that serves (``serving``);
- per version, a verdict: ``accepted`` (passed its checks), ``rejected`` (failed its checks, lost
  an A/B test, or was passed over by an operator's A/B decision) or ``quarantined`` (the
  directory itself is unsafe: a symlink out of the repository, an unsigned version where
  signatures are required). Rejected and quarantined versions never serve until an operator
  re-admits them (:meth:`State.admit`, ``POST /v2/repository/models/NAME/versions/V/admit``);
  a rejected directory found by the watcher whose files later change is checked again (a copy
  that was still in progress);
- the A/B test running on each model (its configuration; its samples live in ``REPO/.ab/``).

Every change is written at once, atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from edgedeploy.util import atomic_write

log = logging.getLogger(__name__)

STATE_FILE = ".edgedeploy-state.json"
ACCEPTED, REJECTED, QUARANTINED = "accepted", "rejected", "quarantined"
BLOCKED = frozenset({REJECTED, QUARANTINED})


class State:
    """The state file of one repository; thread-safe, written on every change."""

    def __init__(self, root: Path):
        self.path = Path(root) / STATE_FILE
        self._lock = threading.Lock()
        self._data = self._load()

    def _load(self) -> dict:
        if not self.path.is_file():
            return {"format": 1, "models": {}}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
                raise ValueError("expected {'models': {...}}")
            return data
        except ValueError as exc:
            # Fail safe: a damaged state file must not make a rejected version serve; keep it for
            # the operator and start from what the directory holds, refusing nothing silently.
            broken = self.path.with_suffix(f".broken-{int(time.time())}")
            self.path.rename(broken)
            log.error("%s is damaged (%s); moved to %s, starting with empty state", self.path, exc, broken)
            return {"format": 1, "models": {}}

    def _model(self, name: str) -> dict:
        return self._data["models"].setdefault(name, {"serving": None, "versions": {}, "ab": None})

    def _save(self) -> None:
        with atomic_write(self.path, "w") as f:
            json.dump(self._data, f, indent=1, sort_keys=True)

    # -- reads ---------------------------------------------------------------------------------
    def serving(self, name: str) -> int | None:
        with self._lock:
            return self._data["models"].get(name, {}).get("serving")

    def verdict(self, name: str, version: int) -> dict | None:
        with self._lock:
            return self._data["models"].get(name, {}).get("versions", {}).get(str(version))

    def blocked(self, name: str, version: int, fingerprint: str | None = None) -> bool:
        """Whether ``version`` may not serve: rejected or quarantined, and (when ``fingerprint`` is
        given, for a directory the watcher found) its files have not changed since."""
        v = self.verdict(name, version)
        if v is None or v["status"] not in BLOCKED:
            return False
        if fingerprint is not None and v.get("fingerprint") and v["fingerprint"] != fingerprint:
            return False
        return True

    def ab(self, name: str) -> dict | None:
        with self._lock:
            return self._data["models"].get(name, {}).get("ab")

    def models(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._data["models"]))

    # -- writes --------------------------------------------------------------------------------
    def set_serving(self, name: str, version: int) -> None:
        with self._lock:
            self._model(name)["serving"] = version
            self._save()

    def set_verdict(self, name: str, version: int, status: str, reason: str = "", *,
                    fingerprint: str | None = None) -> None:
        with self._lock:
            self._model(name)["versions"][str(version)] = {
                "status": status, "reason": reason, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "fingerprint": fingerprint}
            self._save()

    def admit(self, name: str, version: int) -> dict | None:
        """Clear a rejection or quarantine; returns what was cleared (the watcher retries it)."""
        with self._lock:
            old = self._model(name)["versions"].pop(str(version), None)
            self._save()
            return old

    def set_ab(self, name: str, config: dict | None) -> None:
        with self._lock:
            self._model(name)["ab"] = config
            self._save()
