"""The controller's state in SQLite (WAL): devices, published artifacts, rollouts, per-device
assignments, the desired state last sent to each device, the sequence counter and an event log.

Every change is one transaction, so a controller killed at any point restarts where it was; the
CLI (`fleet rollout pause|resume|abort`) writes the same file and the running controller sees it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from edgedeploy.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, state TEXT NOT NULL, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS artifacts (model TEXT, version INTEGER, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    file TEXT NOT NULL, PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS rollouts (name TEXT PRIMARY KEY, plan TEXT NOT NULL, state TEXT NOT NULL,
    stage INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    updated REAL NOT NULL, stage_started REAL);
CREATE TABLE IF NOT EXISTS assignments (rollout TEXT, device TEXT, stage INTEGER NOT NULL,
    from_version INTEGER, to_version INTEGER NOT NULL, seq INTEGER, status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}', updated REAL NOT NULL, PRIMARY KEY (rollout, device));
CREATE TABLE IF NOT EXISTS desired (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS health (device TEXT NOT NULL, t REAL NOT NULL, p50_ms REAL, p99_ms REAL,
    rss_bytes INTEGER, errors INTEGER);
CREATE INDEX IF NOT EXISTS health_device ON health (device, t);
CREATE TABLE IF NOT EXISTS events (t REAL NOT NULL, rollout TEXT, device TEXT, text TEXT NOT NULL);
"""

STATES = ("created", "running", "paused", "aborting", "halted", "rolled_back", "done", "aborted")


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def tx(self, sql: str, *args) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def many(self, statements: list[tuple]) -> None:
        """Several statements in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, *args in statements:
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- sequence ----------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The next desired-state sequence number: only grows, survives restarts."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
            seq = int(row[0]) + 1 if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (str(seq),))
            self._db.execute("COMMIT")
            return seq

    # -- devices -----------------------------------------------------------------------------
    def put_device(self, state: dict) -> None:
        self.tx("INSERT OR REPLACE INTO devices VALUES (?, ?, ?)", state["device"], json.dumps(state), time.time())

    def devices(self) -> list[dict]:
        return [json.loads(r["state"]) | {"seen": r["seen"]} for r in self.tx("SELECT * FROM devices ORDER BY id")]

    # -- artifacts ---------------------------------------------------------------------------
    def published(self, model: str, version: int) -> dict | None:
        rows = self.tx("SELECT * FROM artifacts WHERE model=? AND version=?", model, version)
        return dict(rows[0]) if rows else None

    def publish(self, model: str, version: int, sha256: str, size: int, file: str) -> None:
        old = self.published(model, version)
        if old and old["sha256"] != sha256:
            raise UserError(f"{model} v{version} was already published with other content (sha256 {old['sha256'][:12]}…); "
                            "versions are immutable: give the new artifact a new version")
        self.tx("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)", model, version, sha256, size, file)

    def versions_published(self) -> set[tuple[str, int]]:
        return {(r["model"], r["version"]) for r in self.tx("SELECT model, version FROM artifacts")}

    # -- rollouts ----------------------------------------------------------------------------
    def rollout(self, name: str) -> dict:
        rows = self.tx("SELECT * FROM rollouts WHERE name=?", name)
        if not rows:
            known = [r["name"] for r in self.tx("SELECT name FROM rollouts")]
            from edgedeploy.errors import did_you_mean

            raise UserError(f"no rollout {name!r}{did_you_mean(name, known)}; known: {', '.join(known) or 'none'}")
        return dict(rows[0]) | {"plan": json.loads(rows[0]["plan"])}

    def rollouts(self, states: tuple[str, ...] = STATES) -> list[dict]:
        marks = ",".join("?" * len(states))
        return [dict(r) | {"plan": json.loads(r["plan"])}
                for r in self.tx(f"SELECT * FROM rollouts WHERE state IN ({marks}) ORDER BY created", *states)]

    def set_state(self, name: str, state: str, reason: str = "", *, stage: int | None = None) -> None:
        now = time.time()
        if stage is None:
            self.tx("UPDATE rollouts SET state=?, reason=?, updated=? WHERE name=?", state, reason, now, name)
        else:
            self.tx("UPDATE rollouts SET state=?, reason=?, updated=?, stage=?, stage_started=? WHERE name=?",
                    state, reason, now, stage, now, name)
        self.event(name, None, f"{state}" + (f": {reason}" if reason else "") + (f" (stage {stage + 1})" if stage is not None else ""))

    def assignments(self, rollout: str) -> list[dict]:
        return [dict(r) | {"detail": json.loads(r["detail"])}
                for r in self.tx("SELECT * FROM assignments WHERE rollout=? ORDER BY stage, device", rollout)]

    def prune_health(self, keep_s: float = 86400.0) -> None:
        """Heartbeats older than ``keep_s`` go (the dashboard plots the recent ones)."""
        self.tx("DELETE FROM health WHERE t < ?", time.time() - keep_s)

    def health(self, device: str, limit: int = 300) -> list[dict]:
        rows = self.tx("SELECT * FROM health WHERE device=? ORDER BY t DESC LIMIT ?", device, limit)
        return [dict(r) for r in reversed(rows)]

    def event(self, rollout: str | None, device: str | None, text: str) -> None:
        self.tx("INSERT INTO events VALUES (?, ?, ?, ?)", time.time(), rollout, device, text)

    def events(self, rollout: str | None = None, limit: int = 200) -> list[dict]:
        if rollout is None:
            return [dict(r) for r in self.tx("SELECT * FROM events ORDER BY t DESC LIMIT ?", limit)]
        return [dict(r) for r in self.tx("SELECT * FROM events WHERE rollout=? ORDER BY t DESC LIMIT ?", rollout, limit)]
