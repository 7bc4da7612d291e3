"""The model server: a FastAPI app speaking the KServe v2 protocol over a model repository.

    >>> server = ModelServer("models/", ServerSettings(memory_budget=units.parse_bytes("512MB")))
    >>> app = create_app(server)          # or run(server, host="127.0.0.1", port=8000)

Endpoints: ``/v2/health/live|ready``, ``/v2`` (server metadata), ``/v2/models/{name}[/versions/{v}]``
(metadata, ``/ready``, ``POST /infer``), the repository extension (``POST /v2/repository/index``,
``/v2/repository/models/{name}/load|unload``, and ``POST /v2/repository/models/{name}/versions``
to upload a new version, which is hot-swapped in), A/B tests (``/v2/ab/{name}``), memory status
(``GET /v2/repository/memory``) and Prometheus ``/metrics``. Errors are ``{"error": "..."}`` with
400 (bad request), 404 (unknown model/version), 413 (body too large), 504 (timeout), 507 (memory
budget). uvicorn finishes in-flight requests on SIGINT/SIGTERM before the app shuts down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from edgedeploy import __version__, engines
from edgedeploy.errors import UserError
from edgedeploy.serving import ab as ab_mod
from edgedeploy.serving.memory import (HUGE_PAGES_TUNABLE, BudgetExceeded, MemoryManager, VersionRetired,
                                       configure_allocator, fmt_mb, huge_pages_active, rss_bytes)
from edgedeploy.serving.metrics import CONTENT_TYPE_LATEST, Metrics
from edgedeploy.serving.protocol import HEADER_LENGTH, ProtocolError, datatype, decode_request, encode_response
from edgedeploy.serving.repository import ModelNotFound, Repository, check_name, parse_version
from edgedeploy.serving.swap import Check, Serving, Watcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """memory_budget: bytes all loaded models may hold (None: no limit). threads: the shared
    intra-op pool. max_body_bytes / max_upload_bytes: request size limits. timeout_s: per
    inference request. poll_s: repository scan interval for new versions (0: off)."""

    memory_budget: int | None = None
    threads: int | None = None
    max_body_bytes: int = 64 << 20
    max_upload_bytes: int = 1 << 30
    timeout_s: float = 30.0
    poll_s: float = 2.0
    shutdown_timeout_s: float = 30.0


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _status(exc: Exception) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, ModelNotFound):
        return 404
    if isinstance(exc, BudgetExceeded):
        return 507
    if isinstance(exc, TimeoutError):
        return 504
    if isinstance(exc, UserError):
        return 400
    return 500


class ModelServer:
    """The repository, the memory manager, which version serves, A/B tests and metrics — no HTTP."""

    def __init__(self, repo: str | Path | Repository, settings: ServerSettings | None = None, *,
                 check: Check | None = None):
        self.settings = settings or ServerSettings()
        self.repo = repo if isinstance(repo, Repository) else Repository(repo)
        self.metrics = Metrics()
        self.metrics.budget.set(self.settings.memory_budget or 0)
        self.manager = MemoryManager(self.repo, self.settings.memory_budget, threads=self.settings.threads,
                                     on_event=self._memory_event)
        self.serving = Serving(self.repo, self.manager, check=check,
                               on_result=lambda r: self.metrics.swaps.labels(r.model, "ok" if r.ok else "failed").inc())
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
        self._watcher = Watcher(self.serving, self.settings.poll_s).start()

    def stop(self) -> None:
        if self._watcher:
            self._watcher.stop()
        self._shadow.shutdown(wait=True, cancel_futures=True)
        for name in list(self.ab):
            self.save_ab(name)
        self.manager.close()

    # -- inference ---------------------------------------------------------------------------
    def infer(self, name: str, version: int | None, body: bytes, header_length: int | None,
              key: str | None, arrived: float) -> tuple[bytes, dict[str, str], int]:
        """Decode, route, run, encode. Runs in a worker thread; raises for every kind of failure."""
        req = decode_request(body, header_length)
        key = key or (str(req.parameters["ab_key"]) if "ab_key" in req.parameters else None)
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
            labels = (name, str(v))
            try:
                with self.manager.use(name, v, routed=version is None) as entry:
                    remaining = self.settings.timeout_s - (time.perf_counter() - arrived)
                    with entry.pool.borrow(timeout=max(remaining, 0.001)) as session:
                        started = time.perf_counter()
                        self.metrics.queue.labels(*labels).observe(started - arrived)
                        try:
                            outputs = session.run(req.inputs)
                        except Exception:
                            if test is not None:
                                test.record(variant, 0.0, ok=False)
                                self.metrics.ab.labels(*labels, variant, "error").inc()
                            raise
                        self.metrics.inference.labels(*labels).observe(time.perf_counter() - started)
                break
            except VersionRetired:
                continue
        else:
            raise HttpError(503, f"{name} kept changing version while this request was routed; retry")
        body_out, headers = encode_response(name, v, req, outputs,
                                            {"ab_variant": variant} if variant else None)
        if test is not None:
            test.record(variant, (time.perf_counter() - arrived) * 1000, ok=True)
            self.metrics.ab.labels(*labels, variant, "ok").inc()
            if variant == "candidate" and test.shadow:
                self._shadow_compare(test, req.inputs, outputs)
        return body_out, headers, v

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
                failed = self.serving.failures.get((n, v))
                state = "READY" if loaded else "UNAVAILABLE" if failed else "AVAILABLE"
                row = {"name": n, "version": str(v), "state": state, "serving": current.get(n) == v,
                       "reason": failed.reason if failed else ""}
                if loaded:
                    row["memory_bytes"] = loaded.footprint
                rows.append(row)
        return rows

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
        if base is None:
            self.serving.set_current(name, v)
            return {"model": name, "new": v, "ok": True, "reason": "", "checks": []}
        return self.serving.update(name, v).to_dict()

    # -- A/B tests ---------------------------------------------------------------------------
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
            self.repo.version(name, v)  # both exist and verify
        self.manager.load(name, baseline, pin=True)
        try:
            self.manager.load(name, candidate, pin=True)
        except Exception:
            self.manager.pin(name, baseline, -1)
            raise
        self.ab[name] = test
        return test.to_dict()

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
        del self.ab[name]
        self.serving.hold(name, False)
        for variant in ab_mod.VARIANTS:
            self.manager.pin(name, test.version(variant), -1)
        if winner == "candidate":
            old = self.serving.set_current(name, test.version("candidate"))
            if old is not None and old != test.version("candidate"):
                self.manager.retire(name, old)
        return data


# -- HTTP ------------------------------------------------------------------------------------
async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"request body of {fmt_mb(int(declared))} is over the {fmt_mb(limit)} limit; "
                             "send a smaller batch or raise --max-body")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HttpError(413, f"request body is over the {fmt_mb(limit)} limit; send a smaller batch or raise --max-body")
        chunks.append(chunk)
    return b"".join(chunks)


def _version(text: str | None) -> int | None:
    return None if text is None else parse_version(text)


def create_app(server: ModelServer) -> FastAPI:
    """The FastAPI app for ``server`` (which it starts and stops with the app's lifespan)."""

    @asynccontextmanager
    async def lifespan(app):
        await anyio.to_thread.run_sync(server.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(server.stop)

    app = FastAPI(title="edgedeploy model server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    m = server.metrics

    async def _error(request: Request, exc: Exception):
        status = _status(exc)
        if status == 500:
            log.error("internal error on %s", request.url.path, exc_info=exc)
        return JSONResponse({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}, status_code=status)

    for kind in (UserError, HttpError, TimeoutError, Exception):  # the first three are expected: no traceback
        app.add_exception_handler(kind, _error)

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata():
        return {"name": "edgedeploy", "version": __version__,
                "extensions": ["binary_tensor_data", "model_repository", "ab_testing", "metrics"]}

    async def infer(request: Request, name: str, version: str | None = None):
        arrived = time.perf_counter()
        v = _version(version)
        labels = [name, version or "default"]
        try:
            check_name(name)
            body = await _read_body(request, server.settings.max_body_bytes)
            hl = request.headers.get(HEADER_LENGTH)
            if hl is not None and not hl.isdigit():
                raise ProtocolError(f"{HEADER_LENGTH} {hl!r} is not a byte count")
            with anyio.fail_after(server.settings.timeout_s):
                out, headers, served = await anyio.to_thread.run_sync(
                    server.infer, name, v, body, int(hl) if hl else None, request.headers.get("x-ab-key"), arrived,
                    abandon_on_cancel=True)
        except TimeoutError:
            m.requests.labels(*labels, "timeout").inc()
            raise HttpError(504, f"inference on {name} took longer than the {server.settings.timeout_s:g} s timeout") from None
        except Exception as exc:
            m.requests.labels(*labels, "client_error" if _status(exc) < 500 else "server_error").inc()
            raise
        m.requests.labels(name, str(served), "ok").inc()
        m.latency.labels(name, str(served)).observe(time.perf_counter() - arrived)
        return Response(out, headers=headers)

    app.post("/v2/models/{name}/infer")(infer)
    app.post("/v2/models/{name}/versions/{version}/infer")(infer)

    async def model_metadata(name: str, version: str | None = None):
        return await anyio.to_thread.run_sync(server.metadata, name, _version(version))

    app.get("/v2/models/{name}")(model_metadata)
    app.get("/v2/models/{name}/versions/{version}")(model_metadata)

    async def model_ready(name: str, version: str | None = None):
        v = _version(version)
        mv = server.repo.version(name, v, verify=False)
        return {"name": name, "version": str(mv.version), "ready": True,
                "loaded": server.manager.get(name, mv.version) is not None}

    app.get("/v2/models/{name}/ready")(model_ready)
    app.get("/v2/models/{name}/versions/{version}/ready")(model_ready)

    @app.post("/v2/repository/index")
    async def index():
        return server.index()

    @app.get("/v2/repository/memory")
    async def memory():
        return server.memory()

    async def _json(request: Request) -> dict:
        raw = await _read_body(request, 1 << 20)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"the request body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ProtocolError("the request body must be a JSON object")
        return data

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request):
        data = await _json(request)
        v = _version(data.get("version")) if data.get("version") is not None else server.serving.current(name)
        entry = await anyio.to_thread.run_sync(server.manager.load, name, v)
        return {"name": name, "version": str(v), "memory_bytes": entry.footprint, "load_ms": entry.load_ms}

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str, request: Request):
        data = await _json(request)
        versions = ([_version(data["version"])] if data.get("version") is not None
                    else [s["version"] for s in server.manager.status() if s["name"] == name])
        freed = 0
        for v in versions:
            freed += await anyio.to_thread.run_sync(server.manager.unload, name, v)
        return {"name": name, "unloaded": [str(v) for v in versions], "freed_bytes": freed}

    @app.post("/v2/repository/models/{name}/versions")
    async def upload(name: str, request: Request, filename: str = "model.onnx"):
        data = await _read_body(request, server.settings.max_upload_bytes)
        result = await anyio.to_thread.run_sync(server.upload, name, filename, data,
                                                request.headers.get("x-content-sha256"))
        return JSONResponse(result, status_code=200 if result["ok"] else 422)

    @app.put("/v2/ab/{name}")
    async def start_ab(name: str, request: Request):
        d = await _json(request)
        if "candidate" not in d:
            raise ProtocolError('an A/B test needs {"candidate": VERSION} (and optionally baseline, weight, shadow)')
        return await anyio.to_thread.run_sync(
            server.start_ab, name, _version(d.get("baseline")) if d.get("baseline") is not None else None,
            _version(d["candidate"]), float(d.get("weight", 0.5)), bool(d.get("shadow", True)), d.get("seed"))

    @app.get("/v2/ab/{name}")
    async def get_ab(name: str):
        if name not in server.ab:
            raise ModelNotFound(f"no A/B test of {name} is running")
        return server.save_ab(name)

    @app.delete("/v2/ab/{name}")
    async def end_ab(name: str, winner: str | None = None):
        return server.end_ab(name, winner)

    @app.get("/metrics")
    async def metrics():
        m.used.set(server.manager.used())
        return Response(m.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def run(server: ModelServer, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish (up to ``shutdown_timeout_s``)."""
    import uvicorn

    configure_allocator()  # this process is the server: large buffers go back to the OS when freed
    if not huge_pages_active():
        log.info("large blocks get 4 KiB pages: start the server with GLIBC_TUNABLES=%s for fewer page faults "
                 "on models served with memory_optimization (see serving.memory.huge_pages_environ)",
                 HUGE_PAGES_TUNABLE)
    config = uvicorn.Config(create_app(server), host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=int(server.settings.shutdown_timeout_s), access_log=False)
    uvicorn.Server(config).run()
