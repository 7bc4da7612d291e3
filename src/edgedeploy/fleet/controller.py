"""The controller: rollouts (created by :mod:`~edgedeploy.fleet.rollouts`) driven stage by stage
from the devices' reports. The running :class:`Controller` (``edgedeploy fleet controller``) sends each stage's devices their signed
desired state, reads their reports (gate figures, status), proceeds when the stage's success
threshold is met, and applies the plan's failure policy when its error threshold is reached:
``halt`` (failed devices have already rolled themselves back; devices not yet switched are told
to stay), ``rollback_stage`` (also the stage's devices that switched go back to their previous
slot), ``rollback_all`` (every device of the rollout goes back). All state is in SQLite, so a
restarted controller resumes; every desired state it has sent is re-published on each connect,
so a broker that lost its retained messages gets them back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from edgedeploy.fleet.messages import PREFIX, Desired, device_topic, sign_desired
from edgedeploy.fleet.plan import RolloutPlan
from edgedeploy.fleet.rollouts import DESIRED_LIFETIME_S, FAILED, signing_key
from edgedeploy.fleet.store import Store
from edgedeploy.fleet.transport import BrokerAddress, Link

log = logging.getLogger(__name__)


class Controller:
    """Drives the active rollouts; serves artifacts (HTTP with Range) and the dashboard."""

    def __init__(self, state_dir: Path, broker: BrokerAddress, *, http_host: str = "127.0.0.1", http_port: int = 8900,
                 artifact_url: str | None = None, tick_s: float = 0.5, token: str | None = None):
        self.dir = Path(state_dir)
        self.store = Store(self.dir / "fleet.db")
        self.key = signing_key(self.dir)
        self.broker, self.tick_s, self.token = broker, tick_s, token
        self.http_host, self.http_port = http_host, http_port
        self.artifact_url = artifact_url
        self.link: Link | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()  # ticks and device reports change assignments
        self._warned: set[tuple] = set()
        self._http = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Controller:
        from edgedeploy.fleet.dashboard import start_http

        self._http, self.http_port = start_http(self, self.http_host, self.http_port)
        self.artifact_url = self.artifact_url or f"http://{self.http_host}:{self.http_port}/artifacts"
        self.link = Link(self.broker, f"edgedeploy-controller-{self.dir.resolve().name}")
        self.link.subscribe(f"{PREFIX}/devices/+/state", self._on_state)
        self.link.on_connect(self._republish)
        self.link.open()
        threading.Thread(target=self._loop, name="controller-tick", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.link:
            self.link.close()
        if self._http is not None:
            from edgedeploy.fleet.broker import port_open

            self._http.should_exit = True
            deadline = time.monotonic() + 10
            while port_open(self.http_port, self.http_host) and time.monotonic() < deadline:
                time.sleep(0.05)  # the address is free again when stop returns (a restart may take it)

    def _republish(self) -> None:
        for row in self.store.tx("SELECT device, payload FROM desired"):
            self.link.publish(device_topic(row["device"], "desired"), bytes(row["payload"]), retain=True)

    def _loop(self) -> None:
        pruned = 0.0
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
                if time.monotonic() - pruned > 60:
                    self.store.prune_health()
                    pruned = time.monotonic()
            except Exception:
                log.exception("controller tick failed")

    # -- device reports --------------------------------------------------------------------------
    def _on_state(self, topic: str, raw: bytes) -> None:
        try:
            state = json.loads(raw)
            device = state["device"]
        except (ValueError, KeyError, TypeError):
            log.warning("%s: not a device state message; ignored", topic)
            return
        if topic != device_topic(device, "state"):
            log.warning("%s: claims to be device %r; ignored", topic, device)
            return
        old = next(iter(self.store.tx("SELECT state FROM devices WHERE id=?", device)), None)
        if old is not None and not state.get("online", True):
            state = json.loads(old["state"]) | {"online": False}  # the will says offline: keep what we knew
        published = self.store.versions_published()
        state["unpublished"] = [f"{m} v{v}" for m, v in (state.get("serving") or {}).items() if (m, v) not in published]
        for text in state["unpublished"]:
            if (device, text) not in self._warned:
                self._warned.add((device, text))
                log.warning("device %s serves %s, which this controller never published", device, text)
                self.store.event(None, device, f"serves {text}, which was never published")
        self.store.put_device(state)
        health = state.get("health") or {}
        if state.get("online", True) and health:
            self.store.tx("INSERT INTO health VALUES (?, ?, ?, ?, ?, ?)", device, time.time(), health.get("p50_ms"),
                          health.get("p99_ms"), health.get("rss_bytes"), health.get("errors"))
        last = state.get("last_apply") or {}
        if last.get("seq") is None:
            return
        with self._lock:
            for a in self.store.tx("SELECT * FROM assignments WHERE device=? AND seq=? AND status IN ('pending', 'reverted')",
                                   device, last["seq"]):
                if a["status"] == "reverted":
                    status = "reverted" if last.get("ok") else "revert_failed"
                else:
                    status = "serving" if last.get("ok") else last.get("status") or "failed"
                self.store.tx("UPDATE assignments SET status=?, detail=?, updated=? WHERE rollout=? AND device=?",
                              status, json.dumps(last), time.time(), a["rollout"], device)
                self.store.event(a["rollout"], device, f"{status} v{last.get('version')}" +
                                 (f": {last.get('reason')}" if last.get("reason") else ""))

    # -- driving rollouts ------------------------------------------------------------------------
    def send(self, device: str, desired: Desired) -> None:
        payload = sign_desired(desired, self.key)
        self.store.tx("INSERT OR REPLACE INTO desired VALUES (?, ?, ?)", device, desired.seq, payload)
        if self.link is not None:
            self.link.publish(device_topic(device, "desired"), payload, retain=True)

    def _desired(self, plan: RolloutPlan, rollout: str, version: int) -> Desired:
        art = self.store.published(plan.model, version)
        new = version == plan.version  # going back to a previous slot is not gated: it is the way out
        url = f"{self.artifact_url}/{art['file']}" if art else None
        return Desired(seq=self.store.next_seq(), model=plan.model, version=version, rollout=rollout, artifact=url,
                       sha256=art["sha256"] if art else None, size=art["size"] if art else None,
                       gates=dict(plan.gates) if new else {}, soak_s=plan.soak_s if new else 0.0, expires=time.time() + DESIRED_LIFETIME_S)

    def tick(self) -> None:
        with self._lock:
            for r in self.store.rollouts(("running", "aborting")):
                self._advance(r)

    def _advance(self, r: dict) -> None:
        name, plan, targets = r["name"], RolloutPlan(**r["plan"]["plan"]), r["plan"]["targets"]
        if r["state"] == "aborting":
            self._revert(name, plan, pending_only=r["reason"] != "rollback")
            self.store.set_state(name, "aborted", "rolled back" if r["reason"] == "rollback" else "stopped by the operator")
            return
        stage = r["stage"]
        reach = plan.stages[stage].reach(len(targets))
        assigned = {a["device"]: a for a in self.store.assignments(name)}
        devices = {d["device"]: d for d in self.store.devices()}
        for device in targets[:reach]:
            if device not in assigned:
                current = (devices.get(device, {}).get("serving") or {}).get(plan.model)
                d = self._desired(plan, name, plan.version)
                self.store.tx("INSERT INTO assignments VALUES (?, ?, ?, ?, ?, ?, 'pending', '{}', ?)",
                              name, device, stage, current, plan.version, d.seq, time.time())
                self.send(device, d)
        rows = [a for a in self.store.assignments(name) if a["stage"] <= stage]
        failed = [a for a in rows if a["status"] in FAILED]
        passed = sum(a["status"] == "serving" for a in rows)
        if len(failed) >= plan.thresholds.errors:
            why = f"{len(failed)} device(s) failed the gates in stage {stage + 1} ({failed[0]['device']}: " \
                  f"{failed[0]['detail'].get('reason', failed[0]['status'])})"
            self._fail(name, plan, stage, why)
        elif passed * 100 >= plan.thresholds.success * len(rows) and rows:
            verdict = self._ab(name, plan, stage, targets, assigned, devices) if plan.stages[stage].ab else "promote"
            if verdict == "keep" and time.time() - (r["stage_started"] or r["updated"]) > plan.stage_timeout_s:
                self._fail(name, plan, stage, f"A/B stage {stage + 1} had too few samples to decide in {plan.stage_timeout_s:g} s")
            if verdict != "promote":
                return
            if stage + 1 < len(plan.stages):
                self.store.set_state(name, "running", stage=stage + 1)
            else:
                self.store.set_state(name, "done", f"{passed} of {len(targets)} devices serve v{plan.version}")
        elif time.time() - (r["stage_started"] or r["updated"]) > plan.stage_timeout_s:
            self._fail(name, plan, stage, f"stage {stage + 1} did not reach its success threshold in {plan.stage_timeout_s:g} s")

    def _ab(self, name: str, plan: RolloutPlan, stage: int, targets: list[str], assigned: dict, devices: dict) -> str:
        """An A/B stage: the stage's devices (candidate) against the target's devices not yet switched
        (baseline), pooled, judged by ``serve ab``'s report; returns promote, keep or rollback."""
        from edgedeploy.serving.ab import report

        ab = plan.stages[stage].ab
        rows = self.store.assignments(name)
        candidates = [a["device"] for a in rows if a["status"] == "serving"]
        olds = [a["from_version"] for a in rows if a["from_version"] is not None]
        baseline_v = max(set(olds), key=olds.count) if olds else None
        baselines = [t for t in targets if t not in {a["device"] for a in rows} and devices.get(t, {}).get("online", True)]
        if not baselines or baseline_v is None:
            self.store.event(name, None, f"A/B stage {stage + 1}: no device left on the old version to compare with; promoted")
            return "promote"

        def pool(devs: list[str], version: int) -> dict:
            out = {"version": version, "requests": 0, "errors": 0, "compared": 0, "agreed": 0, "max_diff": 0.0,
                   "latencies_ms": []}
            for d in devs:
                s = ((devices.get(d) or {}).get("samples") or {}).get(plan.model)
                if s and s.get("version") == version:
                    out["requests"] += s["requests"]
                    out["errors"] += s["errors"]
                    out["latencies_ms"] += s["latencies_ms"]
            return out

        data = {"model": plan.model, "weight": len(candidates) / (len(candidates) + len(baselines)),
                "variants": {"baseline": pool(baselines, baseline_v), "candidate": pool(candidates, plan.version)}}
        rep = report(data, min_samples=ab.min_samples, max_slowdown=ab.max_slowdown, alpha=ab.alpha)
        self.store.tx("INSERT OR REPLACE INTO meta VALUES (?, ?)", f"ab:{name}:{stage}", json.dumps(rep, default=float))
        if rep["recommendation"] == "rollback":
            self._fail(name, plan, stage, f"A/B stage {stage + 1}: " + "; ".join(rep["reasons"]))
        elif rep["recommendation"] == "promote":
            self.store.event(name, None, f"A/B stage {stage + 1}: promote (candidate p50 {rep['candidate']['p50_ms']:.3g} ms "
                                         f"vs {rep['baseline']['p50_ms']:.3g} ms, p={rep['latency_p']:.3g})")
        return rep["recommendation"]

    def _fail(self, name: str, plan: RolloutPlan, stage: int, why: str) -> None:
        policy = plan.on_failure
        if policy == "halt":
            self._revert(name, plan, pending_only=True)
            self.store.set_state(name, "halted", why)
        else:
            self._revert(name, plan, pending_only=False, stage=stage if policy == "rollback_stage" else None)
            self.store.set_state(name, "rolled_back", why)

    def _revert(self, name: str, plan: RolloutPlan, *, pending_only: bool, stage: int | None = None) -> None:
        """Send devices back to the version they served before: the pending ones (never switched),
        and unless ``pending_only`` those that switched (in ``stage``, or all)."""
        for a in self.store.assignments(name):
            take = a["status"] == "pending" or (not pending_only and a["status"] == "serving"
                                                and (stage is None or a["stage"] == stage))
            if not take:
                continue
            if a["from_version"] is None:  # nothing to go back to: at least no device still to come gets it
                if a["status"] == "pending":
                    self.store.tx("DELETE FROM desired WHERE device=?", a["device"])
                    self.store.tx("UPDATE assignments SET status='cancelled', updated=? WHERE rollout=? AND device=?",
                                  time.time(), name, a["device"])
                    if self.link is not None:
                        self.link.publish(device_topic(a["device"], "desired"), b"", retain=True)  # clears the retained state
                continue
            d = self._desired(plan, name, a["from_version"])
            self.store.tx("UPDATE assignments SET status='reverted', seq=?, updated=? WHERE rollout=? AND device=?",
                          d.seq, time.time(), name, a["device"])
            self.send(a["device"], d)
