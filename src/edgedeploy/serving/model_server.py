"""The model server without a transport: the repository, memory, which version serves, A/B tests,
statistics and metrics. The HTTP app (``server``) and the gRPC service (``grpc_service``) are
thin layers over :class:`ModelServer`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy import engines
from edgedeploy.errors import UserError
from edgedeploy.serving import ab as ab_mod
from edgedeploy.serving.ab_control import ABControl
from edgedeploy.serving.memory import BudgetExceeded, MemoryManager, VersionRetired, fmt_mb, rss_bytes
from edgedeploy.serving.metrics import Metrics, Statistics
from edgedeploy.serving.protocol import InferRequest, OutputNotJson, datatype, decode_request, encode_response
from edgedeploy.serving.repository import ModelNotFound, Repository, check_name
from edgedeploy.serving.swap import Check, Serving, Watcher

log = logging.getLogger(__name__)

JSON_BYTES_PER_VALUE = 32  # the longest JSON number text ("-1.2345678901234567e-308,") with room to spare
JSON_HEAD_BYTES = 64 << 10  # names, shapes, parameters around the tensors


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How the server runs; validated by the CLI, used by the HTTP and gRPC layers.

    memory_budget: bytes all loaded models may hold (None: no limit). threads: the shared
    intra-op pool. max_body_bytes / max_upload_bytes: request size limits (an inference body is
    further bounded by what the model's inputs can take, see :meth:`ModelServer.body_limit`).
    timeout_s: per inference request. poll_s: fallback rescan interval of the repository watcher
    (0: no watcher). settle_s: a version directory without ``READY`` must be unchanged this long
    before it is loaded. management: the management API (uploads, load/unload, A/B, admit) is
    off unless this is set. inference_token / management_token: bearer tokens (None: no check;
    the management API refuses to start without its token). max_inflight: inference requests
    at once before 503 + Retry-After; max_decode: request bodies decoded at once. max_json_bytes: the
    largest JSON-only body (decoding JSON takes ~10x its size; larger tensors go binary). max_batch:
    the batch a dynamic batch dimension is allowed when bounding a body by the model's inputs.
    read_timeout_s: a client must send its request headers, and its body, within this time.
    """

    memory_budget: int | None = None
    threads: int | None = None
    max_body_bytes: int = 64 << 20
    max_upload_bytes: int = 1 << 30
    timeout_s: float = 30.0
    poll_s: float = 2.0
    settle_s: float = 2.0
    shutdown_timeout_s: float = 30.0
    management: bool = False
    inference_token: str | None = field(default=None, repr=False)
    management_token: str | None = field(default=None, repr=False)
    max_json_bytes: int = 32 << 20
    max_batch: int = 8
    max_inflight: int = 64
    max_decode: int = 2
    read_timeout_s: float = 15.0


class HttpError(Exception):
    """An error with its HTTP status (and, for 503, the seconds after which to retry)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _status(exc: Exception) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, ModelNotFound):
        return 404
    if isinstance(exc, BudgetExceeded):
        return 507
    if isinstance(exc, TimeoutError):
        return 504
    if isinstance(exc, OutputNotJson):
        return 422
    if isinstance(exc, UserError):
        return 400
    return 500


status_of = _status


class ModelServer(ABControl):
    """The repository, the memory manager, which version serves, A/B tests and metrics — no HTTP."""

    def __init__(self, repo: str | Path | Repository, settings: ServerSettings | None = None, *,
                 check: Check | None = None):
        self.settings = settings or ServerSettings()
        self.repo = repo if isinstance(repo, Repository) else Repository(repo)
        self.metrics = Metrics()
        self.metrics.budget.set(self.settings.memory_budget or 0)
        self.manager = MemoryManager(self.repo, self.settings.memory_budget, threads=self.settings.threads,
                                     on_event=self._memory_event)
        self.serving = Serving(self.repo, self.manager, check=check, settle_s=self.settings.settle_s,
                               on_result=lambda r: self.metrics.swaps.labels(r.model, "ok" if r.ok else "failed").inc())
        self.state = self.serving.state
        self._decode = threading.BoundedSemaphore(self.settings.max_decode)
        self._limits: dict[tuple[str, int], int] = {}
        self.stats = Statistics()
        self.ab: dict[str, ab_mod.ABTest] = {}
        self._shadow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ab-shadow")
        self._shadow_backlog = threading.Semaphore(16)  # shadow runs waiting; beyond this they are skipped
        self._watcher: Watcher | None = None
        self.check_budget()

    def _memory_event(self, kind: str, name: str, version: int, nbytes: int) -> None:
        self.metrics.model_event(kind, name, version, nbytes, self.manager.used())

    def check_budget(self) -> None:
        """At start-up: a budget smaller than the smallest model can serve nothing; say so."""
        budget = self.settings.memory_budget
        names = self.repo.names()
        if budget is None or not names:
            return
        sizes = {}
        for n in names:
            try:
                mv = self.repo.version(n, verify=False)
            except UserError as exc:
                log.warning("%s: %s", n, exc)
                continue
            sizes[n] = mv.model_file.stat().st_size if mv.model_file.is_file() else mv.size_bytes()
        if sizes and budget < min(sizes.values()):
            n = min(sizes, key=sizes.get)
            raise UserError(f"--memory-budget {fmt_mb(budget)} is smaller than the smallest model ({n}: "
                            f"{fmt_mb(sizes[n])} on disk, more once loaded); no model could be served: raise the budget")

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Warm up the engines the repository uses (so that a model's measured footprint is the model,
        not the engine's libraries, plugins and thread pools), preload the models whose config asks for it (in ``load_order``),
        and start the repository watcher."""
        import edgedeploy.ingest  # noqa: F401  (reads the models: onnx)

        order, used = [], set()
        for n, v in self.serving.table().items():
            try:
                cfg = self.repo.version(n, v, verify=False).config
            except UserError as exc:
                log.warning("%s v%d: %s", n, v, exc)
                continue
            used.add("onnxruntime" if cfg.engine == "auto" else cfg.engine)
            if cfg.preload:
                order.append((cfg.load_order, n, v))
        for e in sorted(used):
            if engines.available(e):
                engines.warm_up(e)
        for _, n, v in sorted(order):
            self.manager.load(n, v)
        self._restore_ab()
        self._watcher = Watcher(self.serving, self.settings.poll_s).start()

    def stop(self) -> None:
        if self._watcher:
            self._watcher.stop()
        self._shadow.shutdown(wait=True, cancel_futures=True)
        for name in list(self.ab):
            self.save_ab(name)
        self.manager.close()

    # -- inference ---------------------------------------------------------------------------
    def decode(self, body: bytes, header_length: int | None) -> InferRequest:
        """Decode a request body; at most ``max_decode`` at once (a JSON body costs ~30x its tensor)."""
        if not self._decode.acquire(timeout=self.settings.timeout_s):
            raise HttpError(503, "the server is decoding as many requests as it may; retry", retry_after=1)
        try:
            return decode_request(body, header_length)
        finally:
            self._decode.release()

    def infer(self, name: str, version: int | None, body: bytes, header_length: int | None,
              key: str | None, arrived: float) -> tuple[bytes, dict[str, str], int]:
        """Decode, route, run, encode (HTTP). Runs in a worker thread; raises for every kind of failure."""
        req = self.decode(body, header_length)
        outputs, v, variant = self.run(name, version, req.inputs, key, arrived, parameters=req.parameters)
        body_out, headers = encode_response(name, v, req, outputs, {"ab_variant": variant} if variant else None)
        return body_out, headers, v

    def run(self, name: str, version: int | None, inputs: dict, key: str | None, arrived: float, *,
            parameters: dict | None = None) -> tuple[dict, int, str | None]:
        """Route and run decoded inputs: (outputs by name, the version that ran, the A/B variant or None)."""
        parameters = parameters or {}
        key = key or (str(parameters["ab_key"]) if "ab_key" in parameters else None)
        test = None if version is not None else self.ab.get(name)
        variant = None
        for _ in range(5):  # a request routed to a version that is being swapped out is routed again
            if version is not None:
                v = version
            elif test is not None:
                variant = test.route(key)
                v = test.version(variant)
            else:
                v = self.serving.current(name)
            self.check_admitted(name, v)  # a quarantined version can be the only one left: it still never serves
            labels = (name, str(v))
            try:
                with self.manager.use(name, v, routed=version is None) as entry:
                    remaining = self.settings.timeout_s - (time.perf_counter() - arrived)
                    with entry.pool.borrow(timeout=max(remaining, 0.001)) as session:
                        started = time.perf_counter()
                        self.metrics.queue.labels(*labels).observe(started - arrived)
                        try:
                            outputs = session.run(inputs)
                        except Exception:
                            self.stats.record(name, v, started - arrived, time.perf_counter() - started, ok=False)
                            if test is not None:
                                test.record(variant, 0.0, ok=False)
                                self.metrics.ab.labels(*labels, variant, "error").inc()
                            raise
                        self.metrics.inference.labels(*labels).observe(time.perf_counter() - started)
                        self.stats.record(name, v, started - arrived, time.perf_counter() - started, ok=True)
                break
            except VersionRetired:
                continue
        else:
            raise HttpError(503, f"{name} kept changing version while this request was routed; retry", retry_after=1)
        if test is not None:
            test.record(variant, (time.perf_counter() - arrived) * 1000, ok=True)
            self.metrics.ab.labels(*labels, variant, "ok").inc()
            if variant == "candidate" and test.shadow:
                self._shadow_compare(test, inputs, outputs)
        return outputs, v, variant

    def check_admitted(self, name: str, version: int) -> None:
        """403 for a version that was rejected or quarantined (it serves only once re-admitted)."""
        if self.serving.blocked(name, version):
            reason = (self.state.verdict(name, version) or {}).get("reason", "")[:200]
            raise HttpError(403, f"{name} v{version} was rejected ({reason}); an operator must re-admit it "
                                 f"before it serves (POST /v2/repository/models/{name}/versions/{version}/admit)")

    def body_limit(self, name: str, version: int | None, binary: bool) -> int:
        """The largest request body ``name`` can need: its inputs' sizes (dynamic batch up to ``max_batch``)
        as binary tensors or as JSON numbers, never above ``max_body_bytes``. Known before the body is
        read, so an oversized body is refused (413) without reading or decoding it."""
        v = version if version is not None else self.serving.current(name)
        self.check_admitted(name, v)
        cached = self._limits.get((name, v, binary))
        if cached is not None:
            return cached
        limit = self.settings.max_body_bytes if binary else min(self.settings.max_body_bytes,
                                                                 self.settings.max_json_bytes)
        with self.manager.use(name, v) as entry:
            values, nbytes = 0, 0
            for t in entry.session.inputs:
                dims = list(t.shape)
                if any(d is None for d in dims[1:]):  # a dynamic image size: only the global limit applies
                    values = -1
                    break
                n = math.prod(self.settings.max_batch if d is None else d for d in dims)
                values += n
                nbytes += n * np.dtype(t.dtype).itemsize
        if values >= 0:
            need = JSON_HEAD_BYTES + (nbytes if binary else values * JSON_BYTES_PER_VALUE)
            limit = min(limit, need)
        self._limits[(name, v, binary)] = limit
        return limit

    # -- metadata and repository -------------------------------------------------------------
    def metadata(self, name: str, version: int | None) -> dict:
        v = version if version is not None else self.serving.current(name)
        with self.manager.use(name, v) as entry:
            s = entry.session
            return {"name": name, "versions": [str(x) for x in self.repo.versions(name)], "platform": s.engine,
                    "inputs": [{"name": t.name, "datatype": datatype(t.dtype), "shape": [-1 if d is None else d for d in t.shape]}
                               for t in s.inputs],
                    "outputs": [{"name": t.name, "datatype": datatype(t.dtype), "shape": [-1 if d is None else d for d in t.shape]}
                                for t in s.outputs]}

    def index(self) -> list[dict]:
        current = self.serving.table()
        rows = []
        for n in self.repo.names():
            for v in self.repo.versions(n):
                loaded = self.manager.get(n, v)
                verdict = self.state.verdict(n, v) or {}
                blocked = self.serving.blocked(n, v)
                state = "READY" if loaded else "UNAVAILABLE" if blocked else "AVAILABLE"
                row = {"name": n, "version": str(v), "state": state, "serving": current.get(n) == v,
                       "status": verdict.get("status", "pending" if (n, v) in self.serving.pending else "new"),
                       "reason": verdict.get("reason", "") if blocked else ""}
                if loaded:
                    row["memory_bytes"] = loaded.footprint
                rows.append(row)
        rows += [{"name": entry, "version": "", "state": "UNAVAILABLE", "serving": False, "status": "skipped",
                  "reason": why} for entry, why in sorted(self.repo.problems.items())]
        return rows

    def admit(self, name: str, version: int) -> dict:
        """Re-admit a rejected or quarantined version (an operator's decision); the watcher checks it again."""
        if version not in self.repo.versions(name):
            raise ModelNotFound(f"model {name!r} has no version {version}; it has {self.repo.versions(name)}")
        cleared = self.serving.admit(name, version)
        return {"name": name, "version": str(version), "cleared": cleared}

    def model_config(self, name: str, version: int | None) -> dict:
        """Triton's model configuration (``/v2/models/NAME/config``), as far as it applies here."""
        v = version if version is not None else self.serving.current(name)
        mv = self.repo.version(name, v, verify=False)
        with self.manager.use(name, v) as entry:
            s = entry.session

            def tensors(specs):
                return [{"name": t.name, "data_type": f"TYPE_{datatype(t.dtype)}",
                         "dims": [-1 if d is None else d for d in t.shape]} for t in specs]
            return {"name": name, "platform": "onnxruntime_onnx" if s.engine == "onnxruntime" else s.engine,
                    "backend": s.engine, "max_batch_size": 0, "input": tensors(s.inputs),
                    "output": tensors(s.outputs), "instance_group": [{"count": mv.config.instances, "kind": "KIND_CPU"}],
                    "version_policy": {"specific": {"versions": [v]}}, "parameters": {}}

    def statistics(self, name: str | None, version: int | None) -> dict:
        """Triton's statistics extension (``/v2/models[/NAME[/versions/V]]/stats``)."""
        if name is not None:
            self.repo.latest(name)  # unknown model: 404
        return {"model_stats": self.stats.to_triton(name, version)}

    def memory(self) -> dict:
        return {"budget_bytes": self.settings.memory_budget, "used_bytes": self.manager.used(), "rss_bytes": rss_bytes(),
                "models": self.manager.status(), "method": "footprint = RSS growth over load + warm-up, loads serialised"}

    def upload(self, name: str, filename: str, data: bytes, sha256: str | None) -> dict:
        check_name(name)
        if sha256 and hashlib.sha256(data).hexdigest() != sha256.lower():
            raise UserError(f"the uploaded {filename} does not match the sha256 given ({sha256[:16]}…); "
                            "the upload is corrupt or incomplete: send it again")
        base = self.serving.current(name) if self.repo.versions(name) else None
        v = self.repo.add_version(name, {filename: data}, config_from=base)
        if base is None:  # a new model: it must at least load and run its warm-up input before it serves
            try:
                self.manager.load(name, v)
            except Exception as exc:
                reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
                self.serving.reject(name, v, reason)
                self.repo.forget(name, v)
                return {"model": name, "old": None, "new": v, "ok": False, "reason": reason, "checks": []}
            self.state.set_verdict(name, v, "accepted", "loads and runs its warm-up input")
            self.serving.set_current(name, v)
            return {"model": name, "old": None, "new": v, "ok": True, "reason": "",
                    "checks": ["loads and runs its warm-up input"]}
        return self.serving.update(name, v).to_dict()
