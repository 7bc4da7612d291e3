"""The model server's HTTP face: a FastAPI app speaking the KServe v2 protocol over a model repository.

    >>> server = ModelServer("models/", ServerSettings(memory_budget=units.parse_bytes("512MB")))
    >>> app = create_app(server)          # or run(server, host="127.0.0.1", port=8000)

Endpoints: ``/v2/health/live|ready``, ``/v2`` (server metadata), ``/v2/models/{name}[/versions/{v}]``
(metadata, ``/ready``, ``/config``, ``/stats``, ``POST /infer``), ``/v2/models/stats``; the
management API (off unless enabled, behind its own token, see :mod:`.auth`): the repository
extension (``POST /v2/repository/index``, ``/v2/repository/models/{name}/load|unload``,
``POST /v2/repository/models/{name}/versions`` to upload a new version, which is checked and
hot-swapped in, ``.../versions/{v}/admit`` to re-admit a rejected one, ``GET /v2/repository/memory``)
and A/B tests (``/v2/ab/{name}``); Prometheus ``/metrics``. Every error, unknown routes included,
is ``{"error": "..."}``: 400 (bad request), 401/403 (token), 404 (unknown model/version/route),
408 (client too slow), 413 (body larger than the model can take), 422 (a refused upload, or
outputs JSON cannot carry), 503 + Retry-After (overloaded), 504 (timeout), 507 (memory budget).
uvicorn finishes in-flight requests on SIGINT/SIGTERM before the app shuts down.
"""

from __future__ import annotations

import logging
import ssl
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgedeploy import __version__
from edgedeploy.errors import UserError
from edgedeploy.serving.auth import AuthMiddleware
from edgedeploy.serving.memory import HUGE_PAGES_TUNABLE, configure_allocator, fmt_mb, huge_pages_active
from edgedeploy.serving.metrics import CONTENT_TYPE_LATEST
from edgedeploy.serving.model_server import HttpError, ModelServer, ServerSettings, status_of
from edgedeploy.serving.protocol import HEADER_LENGTH, ProtocolError, strict_loads
from edgedeploy.serving.repository import ModelNotFound, check_name, parse_version

__all__ = ["ModelServer", "ServerSettings", "TLS", "create_app", "run"]

log = logging.getLogger(__name__)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (from Content-Length,
    before reading anything), and with 408 when the client takes longer than ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"request body of {fmt_mb(int(declared))} is over the {fmt_mb(limit)} this request "
                             "can need; send a smaller batch, binary tensors, or raise --max-body")
    chunks, total = [], 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise HttpError(413, f"request body is over the {fmt_mb(limit)} this request can need; "
                                         "send a smaller batch or raise --max-body")
                chunks.append(chunk)
    except TimeoutError:
        raise HttpError(408, f"the request body did not arrive within {timeout_s:g} s") from None
    return b"".join(chunks)


def _version(text: str | None) -> int | None:
    return None if text is None else parse_version(text)


def _error_body(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"retry-after": str(retry_after)} if retry_after else {}
    if status in (408, 413):  # the body was not read to its end: this connection cannot carry another request
        headers["connection"] = "close"
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def _error(request: Request, exc: Exception):
        status = status_of(exc)
        if status == 500:
            log.error("internal error on %s", request.url.path, exc_info=exc)
        return _error_body(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                           getattr(exc, "retry_after", None))

    async def _starlette(request: Request, exc: StarletteHTTPException):  # unknown routes, wrong methods
        why = {404: f"no such endpoint {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return _error_body(exc.status_code, why.get(exc.status_code, str(exc.detail)))

    async def _validation(request: Request, exc: RequestValidationError):
        e = exc.errors()[0] if exc.errors() else {}
        return _error_body(400, f"bad request: {'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', 'invalid')}")

    for kind in (UserError, HttpError, TimeoutError, Exception):  # the first three are expected: no traceback
        app.add_exception_handler(kind, _error)
    app.add_exception_handler(StarletteHTTPException, _starlette)
    app.add_exception_handler(RequestValidationError, _validation)


def create_app(server: ModelServer, *, grpc_port: int | None = None, grpc_host: str = "127.0.0.1") -> FastAPI:
    """The FastAPI app for ``server`` (which it starts and stops with the app's lifespan); with
    ``grpc_port`` the KServe v2 gRPC service runs beside it (0: any free port, see ``app.state.grpc_port``)."""
    settings = server.settings
    if settings.management and not settings.management_token:
        raise UserError("the management API needs a token: give management_token (a file or environment variable)")

    @asynccontextmanager
    async def lifespan(app):
        await anyio.to_thread.run_sync(server.start)
        grpc = None
        if grpc_port is not None:
            from edgedeploy.serving.grpc_service import start_grpc

            grpc = start_grpc(server, host=grpc_host, port=grpc_port, tls=getattr(app.state, "tls", None))
            app.state.grpc_port = grpc.port
        try:
            yield
        finally:
            if grpc is not None:
                grpc.stop(settings.shutdown_timeout_s)
            await anyio.to_thread.run_sync(server.stop)

    app = FastAPI(title="edgedeploy model server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(AuthMiddleware, settings=settings)
    _install_error_handlers(app)
    _inference_routes(app, server)
    _management_routes(app, server)
    return app


def _inference_routes(app: FastAPI, server: ModelServer) -> None:
    m, settings = server.metrics, server.settings
    inflight = [0]  # touched only on the event loop: no lock needed

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata():
        return {"name": "edgedeploy", "version": __version__,
                "extensions": ["binary_tensor_data", "model_repository", "model_configuration", "statistics",
                               "ab_testing", "metrics"]}

    async def infer(request: Request, name: str, version: str | None = None):
        arrived = time.perf_counter()
        v = _version(version)
        labels = [name, version or "default"]
        if inflight[0] >= settings.max_inflight:
            m.requests.labels(*labels, "overload").inc()
            raise HttpError(503, f"{inflight[0]} requests are in progress (the limit); retry shortly", retry_after=1)
        inflight[0] += 1
        try:
            check_name(name)
            hl = request.headers.get(HEADER_LENGTH)
            if hl is not None and not hl.isdigit():
                raise ProtocolError(f"{HEADER_LENGTH} {hl!r} is not a byte count")
            limit = await anyio.to_thread.run_sync(server.body_limit, name, v, hl is not None)
            body = await _read_body(request, limit, settings.read_timeout_s)
            with anyio.fail_after(settings.timeout_s):
                out, headers, served = await anyio.to_thread.run_sync(
                    server.infer, name, v, body, int(hl) if hl else None, request.headers.get("x-ab-key"), arrived,
                    abandon_on_cancel=True)
        except TimeoutError:
            m.requests.labels(*labels, "timeout").inc()
            raise HttpError(504, f"inference on {name} took longer than the {settings.timeout_s:g} s timeout") from None
        except Exception as exc:
            m.requests.labels(*labels, "client_error" if status_of(exc) < 500 else "server_error").inc()
            raise
        finally:
            inflight[0] -= 1
        m.requests.labels(name, str(served), "ok").inc()
        m.latency.labels(name, str(served)).observe(time.perf_counter() - arrived)
        return Response(out, headers=headers)

    app.post("/v2/models/{name}/infer")(infer)
    app.post("/v2/models/{name}/versions/{version}/infer")(infer)

    async def model_metadata(name: str, version: str | None = None):
        return await anyio.to_thread.run_sync(server.metadata, name, _version(version))

    async def model_ready(name: str, version: str | None = None):
        mv = server.repo.version(name, _version(version), verify=False)
        return {"name": name, "version": str(mv.version), "ready": not server.serving.blocked(name, mv.version),
                "loaded": server.manager.get(name, mv.version) is not None}

    async def model_config(name: str, version: str | None = None):
        return await anyio.to_thread.run_sync(server.model_config, name, _version(version))

    async def model_stats(name: str | None = None, version: str | None = None):
        return server.statistics(name, _version(version))

    for suffix, fn in (("", model_metadata), ("/ready", model_ready), ("/config", model_config),
                       ("/stats", model_stats)):
        app.get(f"/v2/models/{{name}}{suffix}")(fn)
        app.get(f"/v2/models/{{name}}/versions/{{version}}{suffix}")(fn)
    app.get("/v2/models/stats")(model_stats)
    # Starlette matches in order: /v2/models/stats must win over /v2/models/{name}
    app.router.routes.insert(0, app.router.routes.pop())

    @app.get("/metrics")
    async def metrics():
        m.used.set(server.manager.used())
        return Response(m.render(), media_type=CONTENT_TYPE_LATEST)


def _management_routes(app: FastAPI, server: ModelServer) -> None:
    settings = server.settings

    async def _json(request: Request) -> dict:
        raw = await _read_body(request, 1 << 20, settings.read_timeout_s)
        if not raw.strip():
            return {}
        data = strict_loads(raw, "the request body")
        if not isinstance(data, dict):
            raise ProtocolError("the request body must be a JSON object")
        return data

    @app.post("/v2/repository/index")
    async def index():
        return await anyio.to_thread.run_sync(server.index)

    @app.get("/v2/repository/memory")
    async def memory():
        return server.memory()

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request):
        data = await _json(request)
        v = _version(data.get("version")) if data.get("version") is not None else server.serving.current(name)
        if server.serving.blocked(name, v):
            raise HttpError(403, f"{name} v{v} was rejected; re-admit it first")
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
        data = await _read_body(request, settings.max_upload_bytes, max(settings.read_timeout_s, 300))
        result = await anyio.to_thread.run_sync(server.upload, name, filename, data,
                                                request.headers.get("x-content-sha256"))
        return JSONResponse(result, status_code=200 if result["ok"] else 422)

    @app.post("/v2/repository/models/{name}/versions/{version}/admit")
    async def admit(name: str, version: str):
        return await anyio.to_thread.run_sync(server.admit, name, _version(version))

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
        return await anyio.to_thread.run_sync(server.end_ab, name, winner)


@dataclass(frozen=True, kw_only=True)
class TLS:
    """certfile/keyfile: the server's certificate chain and key (PEM). client_ca: when given,
    clients must present a certificate signed by it (mutual TLS)."""

    certfile: Path
    keyfile: Path
    client_ca: Path | None = None

    def uvicorn_options(self) -> dict:
        for p in (self.certfile, self.keyfile, self.client_ca):
            if p is not None and not Path(p).is_file():
                raise UserError(f"TLS file {p} does not exist; give PEM files for the certificate, key and client CA")
        opts = {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile)}
        if self.client_ca is not None:
            opts.update(ssl_ca_certs=str(self.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
        return opts


def uvicorn_config(app, *, host: str, port: int, settings: ServerSettings, tls: TLS | None = None):
    """uvicorn's config with this server's limits: request headers must arrive within
    ``read_timeout_s`` (uvicorn itself waits for ever: slow-loris), idle keep-alive 5 s, at most
    64 KiB of incomplete headers."""
    import uvicorn

    from edgedeploy.serving.slow_clients import guarded_h11

    if tls is not None:
        app.state.tls = tls
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          http=guarded_h11(settings.read_timeout_s), timeout_keep_alive=5,
                          h11_max_incomplete_event_size=64 << 10,
                          timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
                          **(tls.uvicorn_options() if tls else {}))


def run(server: ModelServer, *, host: str = "127.0.0.1", port: int = 8000, grpc_port: int | None = None,
        tls: TLS | None = None, on_started=None) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish (up to ``shutdown_timeout_s``).
    ``on_started(http_port, grpc_port)`` is called once both listen (ports bound when 0 was asked)."""
    import uvicorn

    configure_allocator()  # this process is the server: large buffers go back to the OS when freed
    if not huge_pages_active():
        log.info("large blocks get 4 KiB pages: start the server with GLIBC_TUNABLES=%s for fewer page faults "
                 "on models served with memory_optimization (see serving.memory.huge_pages_environ)",
                 HUGE_PAGES_TUNABLE)
    app = create_app(server, grpc_port=grpc_port, grpc_host=host)
    userver = uvicorn.Server(uvicorn_config(app, host=host, port=port, settings=server.settings, tls=tls))
    if on_started is not None:
        original = userver.startup

        async def startup(sockets=None):
            await original(sockets)
            bound = userver.servers[0].sockets[0].getsockname()[1] if userver.servers else port
            on_started(bound, getattr(app.state, "grpc_port", None))
        userver.startup = startup
    userver.run()
