"""The controller's HTTP side: artifacts (with Range requests, for resumable downloads), a JSON API
and a web dashboard (fleet table, rollout progress by stage with gate figures, per-device latency).

Reading is open on the listening address (loopback by default); changing a rollout
(``POST /api/rollouts/NAME/ACTION``) needs ``Authorization: Bearer TOKEN``, the controller's token.
"""


import hmac
import html
import threading
import time

from edgedeploy.errors import UserError


def _svg(points: list[tuple[float, float]], *, width: int = 240, height: int = 48) -> str:
    """A small polyline of (t, value); empty when there is nothing to draw."""
    pts = [(t, v) for t, v in points if v is not None]
    if len(pts) < 2:
        return '<svg class="plot" width="%d" height="%d"></svg>' % (width, height)
    t0, t1 = pts[0][0], pts[-1][0] or 1
    top = max(v for _, v in pts) or 1
    xy = " ".join(f"{(t - t0) / max(t1 - t0, 1e-9) * (width - 4) + 2:.1f},{height - 2 - v / top * (height - 4):.1f}"
                  for t, v in pts)
    return (f'<svg class="plot" width="{width}" height="{height}"><polyline fill="none" stroke="#2a6" '
            f'stroke-width="1.5" points="{xy}"/><text x="2" y="10" font-size="9">max {top:.2f} ms</text></svg>')


def _ab(rep: dict | None) -> str:
    if not rep:
        return ""
    b, c = rep["baseline"], rep["candidate"]
    return _fmt(f"{rep['recommendation']}: p50 {c['p50_ms'] or 0:.3g} vs {b['p50_ms'] or 0:.3g} ms, "
                f"{c['requests']} vs {b['requests']} requests, p={rep['latency_p']:.3g}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def render(controller) -> str:
    """The dashboard page: server-side HTML, no scripts beyond a reload every few seconds."""
    from edgedeploy.fleet.rollouts import status

    store = controller.store
    rows = []
    for d in store.devices():
        h = d.get("health") or {}
        plot = _svg([(x["t"], x["p99_ms"]) for x in store.health(d["device"])])
        serving = ", ".join(f"{m} v{v}" for m, v in (d.get("serving") or {}).items()) or "-"
        note = "; ".join(f"{x} never published" for x in d.get("unpublished") or [])
        rows.append(f'<tr class="device" id="dev-{_fmt(d["device"])}"><td>{_fmt(d["device"])}</td><td>{_fmt(d.get("group", ""))}</td>'
                    f'<td>{_fmt((d.get("hardware") or {}).get("cpu", ""))}</td><td>{_fmt(serving)}</td>'
                    f'<td>{"online" if d.get("online", True) else "offline"}</td><td>{_fmt(h.get("p50_ms"))}</td>'
                    f'<td>{_fmt(h.get("p99_ms"))}</td><td>{_fmt(round((h.get("rss_bytes") or 0) / 2**20))}</td>'
                    f'<td>{_fmt(h.get("errors", ""))}</td><td>{plot}</td><td>{_fmt(note)}</td></tr>')
    sections = []
    for r in reversed(store.rollouts()):
        st = status(store, r["name"])
        done = [sum(x["serving"] for x in st["stages"][: i + 1]) for i in range(len(st["stages"]))]  # stages are cumulative
        stages = "".join(
            f'<tr class="stage"><td>{s["stage"]}. {_fmt(s["name"])}</td><td>{s["reach"]}</td><td>{s["serving"]}</td>'
            f'<td>{s["failed"]}</td><td>{s["pending"]}</td><td><progress max="{max(s["reach"], 1)}" '
            f'value="{d}"></progress></td><td class="ab">{_ab(s["ab"])}</td></tr>' for s, d in zip(st["stages"], done))
        devs = "".join(
            f'<tr><td>{_fmt(d["device"])}</td><td>{d["stage"]}</td><td>{_fmt(d["status"])}</td><td>'
            + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(d["figures"].items())) + f'</td><td>{_fmt(d["reason"])}</td></tr>'
            for d in st["devices"])
        sections.append(
            f'<section class="rollout" id="rollout-{_fmt(st["rollout"])}"><h3>{_fmt(st["rollout"])}: {_fmt(st["model"])} '
            f'v{st["version"]} <span class="state">{_fmt(st["state"])}</span></h3><p>{_fmt(st["reason"])}</p>'
            f'<table><tr><th>stage</th><th>reach</th><th>serving</th><th>failed</th><th>pending</th><th></th><th>A/B</th></tr>{stages}</table>'
            f'<table><tr><th>device</th><th>stage</th><th>status</th><th>gate figures</th><th>reason</th></tr>{devs}</table></section>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgedeploy fleet</title>
<meta http-equiv="refresh" content="5"><style>body{{font-family:sans-serif;margin:1em}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}} .state{{color:#a40}}</style></head><body>
<h1>edgedeploy fleet</h1><p>{time.strftime('%Y-%m-%d %H:%M:%S')} · read-only view</p>
<h2>Devices</h2><table id="fleet"><tr><th>device</th><th>group</th><th>hardware</th><th>serving</th><th>state</th>
<th>p50 ms</th><th>p99 ms</th><th>RSS MiB</th><th>errors (60 s)</th><th>p99 over time</th><th>note</th></tr>{''.join(rows)}</table>
<h2>Rollouts</h2>{''.join(sections) or '<p>none</p>'}</body></html>"""


def create_app(controller):
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from edgedeploy.fleet.rollouts import control, status

    app = FastAPI(title="edgedeploy fleet", docs_url=None, redoc_url=None, openapi_url=None)
    art_dir = (controller.dir / "artifacts").resolve()

    @app.get("/artifacts/{name}")
    def artifact(name: str):
        path = (art_dir / name).resolve()
        if path.parent != art_dir or not path.is_file():
            return JSONResponse({"error": f"no artifact {name}"}, status_code=404)
        return FileResponse(path, media_type="application/x-tar")  # answers Range requests (206)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return render(controller)

    @app.get("/api/devices")
    def devices():
        return controller.store.devices()

    @app.get("/api/rollouts")
    def rollouts():
        return [status(controller.store, r["name"]) for r in controller.store.rollouts()]

    @app.get("/api/devices/{device}/health")
    def health(device: str):
        return controller.store.health(device)

    @app.post("/api/rollouts/{name}/{action}")
    def act(name: str, action: str, request: Request):
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not controller.token or not hmac.compare_digest(given.encode(), controller.token.encode()):
            return JSONResponse({"error": "changing a rollout needs Authorization: Bearer TOKEN"}, status_code=401)
        if action not in ("start", "pause", "resume", "abort"):
            return JSONResponse({"error": f"unknown action {action!r}: start, pause, resume or abort"}, status_code=400)
        try:
            return control(controller.store, name, action)
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return app


def start_http(controller, host: str, port: int):
    """Run the app with uvicorn in a thread; returns (server, the port it listens on)."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UserError(f"controller HTTP {host}:{port}: cannot listen ({exc.strerror}); choose another --http-port") from None
    server = uvicorn.Server(uvicorn.Config(create_app(controller), log_level="warning", access_log=False))
    server.install_signal_handlers = lambda: None
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="controller-http", daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, sock.getsockname()[1]


__all__ = ["create_app", "render", "start_http"]
