"""``edgedeploy agent``: one device of the fleet.

It serves models in-process through :mod:`edgedeploy.serving` (optionally over HTTP too), reports
its identity, hardware, engines, served versions and health on a retained MQTT state message,
and follows its signed desired state: download (resumable), verify, install into a slot, check
the gates on the new version *before* it serves (golden input, p99, RSS), hot-swap, soak, check
the error rate, and roll back to the previous slot on any failure. Two slots per model (the
version serving and the one before), so a rollback never downloads.

    STATE_DIR/repo/MODEL/VERSION/   the slots (a serving repository requiring trusted signatures)
    STATE_DIR/downloads/            partial and finished downloads (resume after a crash)
    STATE_DIR/agent.json            last accepted sequence number and last apply (survives restarts)
"""

from __future__ import annotations

import json
import logging
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.fleet import artifacts, gates, remote
from edgedeploy.fleet.messages import Desired, MessageRefused, device_topic, group_topic, open_desired, open_job
from edgedeploy.fleet.runtime import CountingServer, temperature
from edgedeploy.fleet.transport import BrokerAddress, Link
from edgedeploy.serving.repository import Repository
from edgedeploy.serving.server import ServerSettings
from edgedeploy.util import atomic_write

log = logging.getLogger(__name__)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_id(value: str, what: str) -> str:
    """Device ids and groups become MQTT topic levels: no '/', '+', '#', spaces."""
    if not _ID.match(value):
        raise UserError(f"{what} {value!r} is not allowed: use 1-64 letters, digits, '_', '.', '-' (it is an MQTT topic level)")
    return value


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """device_id / group / labels: identity the controller selects on. trusted_keys: public keys
    (files or directories) whose signatures the device accepts. heartbeat_s: state period.
    load_hz: a steady self-load on every served model (inferences/s; 0: none), which also
    counts failed inferences. max_rate: download limit, bytes/s. serve_port: also serve HTTP."""

    device_id: str
    broker: BrokerAddress
    state_dir: Path
    trusted_keys: tuple[str, ...]
    group: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    heartbeat_s: float = 5.0
    load_hz: float = 0.0
    max_rate: float | None = None
    serve_port: int | None = None
    memory_budget: int | None = None
    threads: int | None = 1
    download_retries: int = 30


class Agent:
    def __init__(self, settings: AgentSettings):
        from edgedeploy.security.keys import load_public_keys

        s = self.settings = settings
        check_id(s.device_id, "device id")
        check_id(s.group, "group")
        self.trusted = load_public_keys([Path(p) for p in s.trusted_keys])
        self.dir = Path(s.state_dir)
        (self.dir / "repo").mkdir(parents=True, exist_ok=True)
        self._state_file = self.dir / "agent.json"
        saved = json.loads(self._state_file.read_text()) if self._state_file.is_file() else {}
        self.last_seq: int = saved.get("last_seq", 0)
        self.last_apply: dict = saved.get("last_apply", {})
        self.bytes_downloaded: int = saved.get("bytes_downloaded", 0)
        # the slots are a serving repository that takes only versions signed by a trusted key, at every load
        self.server = CountingServer(Repository(self.dir / "repo", trusted_keys=self.trusted),
                                     ServerSettings(poll_s=0, threads=s.threads, memory_budget=s.memory_budget),
                                     check=self._gate_check)
        self._gates: dict | None = None  # the gates of the apply in progress (the swap's check reads them)
        self._figures: dict = {}
        self._inbox: queue.Queue[bytes] = queue.Queue()
        self._jobs: queue.Queue[bytes] = queue.Queue()
        self._jobs_done: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.link: Link | None = None
        self._identity = self._probe()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Agent:
        s = self.settings
        offline = json.dumps({"device": s.device_id, "online": False}).encode()
        self.link = Link(s.broker, f"edgedeploy-agent-{s.device_id}", will=(device_topic(s.device_id, "state"), offline))
        self.link.subscribe(device_topic(s.device_id, "desired"), self._on_desired)
        self.link.subscribe(group_topic(s.group), self._on_desired)
        for topic in (device_topic(s.device_id, "jobs"), group_topic(s.group, "jobs")):
            self.link.subscribe(topic, lambda t, raw: self._jobs.put(raw))
        self.link.on_connect(self.publish_state)
        self.link.open()  # first: a wrong address or bad credentials stops here, with nothing started
        self.server.start()
        for name, target in (("apply", self._apply_loop), ("heartbeat", self._heartbeat_loop), ("load", self._load_loop),
                             ("jobs", self._job_loop)):
            t = threading.Thread(target=target, name=f"agent-{s.device_id}-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if s.serve_port is not None:
            self._serve_http(s.serve_port)
        log.info("agent %s: connected to %s, serving %s", s.device_id, s.broker, self.server.serving.table())
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        if self.link is not None:
            self.link.publish(device_topic(self.settings.device_id, "state"),
                              json.dumps({**self.state(), "online": False}).encode(), retain=True)
            self.link.close()
        self.server.stop()

    def _serve_http(self, port: int) -> None:
        import uvicorn

        from edgedeploy.serving.server import create_app

        config = uvicorn.Config(create_app(self.server), host="127.0.0.1", port=port, log_level="warning", access_log=False)
        http = uvicorn.Server(config)
        http.install_signal_handlers = lambda: None  # the agent's thread, not the main one
        threading.Thread(target=http.run, name="agent-http", daemon=True).start()

    # -- reporting -------------------------------------------------------------------------------
    def _probe(self) -> dict:
        """Identity without importing every engine (``hardware.local`` probes GPUs through them: ~300 MB)."""
        import os
        import platform

        import psutil

        from edgedeploy import engines
        from edgedeploy.benchmarking.power import cpu_model
        from edgedeploy.hardware.profiles import ISA_FLAGS, _cpuinfo

        flags = set(" ".join(line.split(":", 1)[-1] for line in _cpuinfo().splitlines()
                             if line.startswith(("flags", "Features"))).split())
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else psutil.cpu_count()
        return {"hardware": {"name": f"{platform.machine()} {cpu_model()}", "cpu": f"{cores} usable cores, {cpu_model()}",
                             "isa": [f for f in ISA_FLAGS if f in flags], "memory_bytes": psutil.virtual_memory().total},
                "engines": [e for e in engines.ENGINES if engines.available(e)]}

    def health(self, window_s: float = 60.0) -> dict:
        from edgedeploy.serving.memory import rss_bytes

        since = time.time() - window_s
        recent = [c for c in list(self.server.calls) if c[0] >= since]
        ms = [c[1] for c in recent if c[2]]
        return {"window_s": window_s, "inferences": len(recent), "errors": sum(not c[2] for c in recent),
                "p50_ms": gates.percentile(ms, 50), "p99_ms": gates.percentile(ms, 99),
                "rss_bytes": rss_bytes(), "temperature_c": temperature(), "served_total": self.server.served_total,
                "failed_total": self.server.failed_total}

    def state(self) -> dict:
        s = self.settings
        return {"device": s.device_id, "online": True, "group": s.group, "labels": s.labels, **self._identity,
                "serving": self.server.serving.table(),
                "slots": {n: self.server.repo.versions(n) for n in self.server.repo.names()},
                "health": self.health(), "samples": self.server.samples(), "last_seq": self.last_seq, "last_apply": self.last_apply,
                "bytes_downloaded": self.bytes_downloaded, "at": time.time()}

    def publish_state(self) -> None:
        if self.link is not None:
            self.link.publish(device_topic(self.settings.device_id, "state"), json.dumps(self.state()).encode(), retain=True)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            self.publish_state()

    def _load_loop(self) -> None:
        """A steady load on every served model: what users would send, and the proof of no failed request."""
        from edgedeploy.serving.memory import warmup_feeds
        from edgedeploy.serving.protocol import HEADER_LENGTH, encode_request

        hz = self.settings.load_hz
        bodies: dict[tuple[str, int], tuple[bytes, int]] = {}
        while hz > 0 and not self._stop.wait(1 / hz):
            for name in self.server.serving.table():
                try:
                    v = self.server.serving.current(name)
                    if (name, v) not in bodies:  # the input follows the version (cached per version)
                        with self.server.manager.use(name, v) as e:
                            body, headers = encode_request(warmup_feeds(e.session, e.mv.config.warmup), binary=True)
                        bodies[(name, v)] = (body, int(headers[HEADER_LENGTH]))
                    body, n = bodies[(name, v)]
                    self.server.infer(name, None, body, n, None, time.perf_counter())
                except Exception as exc:  # counted by the server; the load goes on
                    log.warning("agent %s: inference on %s failed: %s", self.settings.device_id, name, exc)

    # -- remote measurement ------------------------------------------------------------------------
    def _job_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self._jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                job = open_job(raw, self.trusted, done=self._jobs_done)
            except MessageRefused as exc:
                log.warning("agent %s: %s", self.settings.device_id, exc)
                continue
            self._jobs_done.add(job.id)
            answer = {"job": job.id, "device": self.settings.device_id, "model": job.model}
            try:
                answer |= remote.measure(self.server, job, device=self.settings.device_id, threads=self.settings.threads)
            except Exception as exc:  # the answer says why; the agent goes on
                answer |= {"results": [], "reason": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
            self.link.publish(device_topic(self.settings.device_id, "results"), json.dumps(answer, default=str).encode())

    # -- desired state ---------------------------------------------------------------------------
    def _on_desired(self, topic: str, raw: bytes) -> None:
        if raw:  # an empty retained message clears the topic
            self._inbox.put(raw)

    def _apply_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                seq = int(json.loads(raw)["desired"]["seq"])
            except (ValueError, KeyError, TypeError):
                seq = None
            if seq is not None and seq <= self.last_seq:
                continue  # already handled (the retained copy, seen again after a reconnect)
            try:
                desired = open_desired(raw, self.trusted, last_seq=self.last_seq)
            except MessageRefused as exc:
                log.warning("agent %s: %s", self.settings.device_id, exc)
                self._record({"seq": seq, "status": "refused", "ok": False, "reason": str(exc)}, accept=False)
                continue
            self._record(self.apply(desired) | {"seq": desired.seq, "rollout": desired.rollout}, accept=True)

    def _record(self, result: dict, *, accept: bool) -> None:
        if accept:
            self.last_seq = result["seq"]
        self.last_apply = {**result, "at": time.time()}
        with atomic_write(self._state_file, "w") as f:
            json.dump({"last_seq": self.last_seq, "last_apply": self.last_apply, "bytes_downloaded": self.bytes_downloaded}, f)
        self.publish_state()

    def apply(self, d: Desired) -> dict:
        """Bring ``d.model`` to ``d.version``; returns what happened (status, reason, gate figures)."""
        out = {"model": d.model, "version": d.version, "ok": False, "figures": {}, "reason": "", "bytes": 0}
        current = self.server.serving.table().get(d.model)
        if current == d.version:
            return out | {"ok": True, "status": "serving", "reason": "already serving it"}
        held = d.version in self.server.repo.versions(d.model)
        if not held:
            try:
                out["bytes"] = self._fetch(d)
            except UserError as exc:
                return out | {"status": "refused" if isinstance(exc, artifacts.ArtifactRefused) else "failed",
                              "reason": str(exc)}
        self._gates, self._figures = dict(d.gates), {}
        try:
            ok, reason = self._swap(d.model, d.version, current)
        finally:
            self._gates = None
        out["figures"] = dict(self._figures)
        if ok and d.soak_s > 0 and "error_rate" in d.gates:
            ok, reason = self._soak(d, current, out)
        if not ok:
            if not held:
                shutil.rmtree(self.server.repo.root / d.model / str(d.version), ignore_errors=True)
            soaked = out["figures"].get("error_rate") is not None  # it served, then failed: rolled back
            return out | {"status": "rolled_back" if soaked and current is not None else "failed", "reason": reason,
                          "serving": current}
        self._prune(d.model)
        return out | {"ok": True, "status": "serving", "from_slot": held}

    def _fetch(self, d: Desired) -> int:
        if not d.artifact or not d.sha256:
            raise artifacts.ArtifactRefused(f"{d.model} v{d.version} is not in a slot here and the desired state names no artifact")
        part = self.dir / "downloads" / f"{d.sha256}.tar.part"
        got = 0
        for attempt in range(self.settings.download_retries):
            try:
                tar, n = artifacts.download(d.artifact, part, sha256=d.sha256, size=d.size, max_rate=self.settings.max_rate)
                got += n
                break
            except artifacts.ArtifactRefused:
                raise
            except UserError as exc:  # interrupted: resume from the partial file
                log.warning("agent %s: %s (try %d)", self.settings.device_id, exc, attempt + 1)
                if self._stop.wait(min(1 + attempt, 5)):
                    raise
        else:
            raise UserError(f"artifact {d.artifact}: {self.settings.download_retries} tries failed")
        self.bytes_downloaded += got
        staging = self.dir / "staging" / f"{d.model}-{d.version}"
        try:
            manifest = artifacts.unpack_verified(tar, staging, self.trusted)
            if (manifest.get("model"), manifest.get("version")) != (d.model, d.version):
                shutil.rmtree(staging, ignore_errors=True)
                raise artifacts.ArtifactRefused(f"artifact {d.artifact}: signed for {manifest.get('model')} "
                                                f"v{manifest.get('version')}, not {d.model} v{d.version}; refused")
            artifacts.install(staging, self.server.repo.root / d.model / str(d.version))
        finally:
            tar.unlink(missing_ok=True)  # installed, or refused: either way the archive has served its purpose
        return got

    def _swap(self, model: str, version: int, current: int | None) -> tuple[bool, str]:
        if current is None:  # the model's first version: load and check it, then serve it
            try:
                entry = self.server.manager.load(model, version)
                why = self._gate_check(model, version, entry.session)
            except Exception as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if why:
                self.server.manager.unload(model, version)
                return False, why
            self.server.serving.set_current(model, version)
            return True, ""
        r = self.server.serving.update(model, version)
        return r.ok, r.reason

    def _gate_check(self, model: str, version: int, session) -> str | None:
        """The swap's check: the plan's gates on the new version, before it serves a request."""
        if self._gates is None:
            return None
        mv = self.server.repo.version(model, version, verify=False)
        figures, failures = gates.measure(session, mv.path, mv.config.warmup, self._gates)
        self._figures.update(figures)
        return "; ".join(failures) or None

    def _soak(self, d: Desired, previous: int | None, out: dict) -> tuple[bool, str]:
        """Serve for ``soak_s``, then check the error rate; roll back to ``previous`` if it is over."""
        before = self.server.failed_total, self.server.served_total
        self._stop.wait(d.soak_s)
        failed = self.server.failed_total - before[0]
        total = failed + self.server.served_total - before[1]
        rate = failed / total if total else 0.0
        out["figures"]["error_rate"] = rate
        if rate <= d.gates["error_rate"]:
            return True, ""
        reason = f"error_rate {rate:.3g} > {d.gates['error_rate']:g} over {d.soak_s:g} s after the swap"
        if previous is not None:
            self.server.serving.update(d.model, previous)
        return False, reason

    def _prune(self, model: str) -> None:
        """Keep two slots: the version serving and the newest older one."""
        current = self.server.serving.current(model)
        older = [v for v in self.server.repo.versions(model) if v < current]
        keep = {current, *older[-1:]}
        for v in self.server.repo.versions(model):
            if v not in keep:
                self.server.manager.unload(model, v)
                shutil.rmtree(self.server.repo.root / model / str(v), ignore_errors=True)
