"""`edgedeploy serve` and `edgedeploy ab report`."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import typer

from edgedeploy.cli.output import console, emit_json, fmt_bytes, fmt_ms, table
from edgedeploy.errors import UserError

ab_app = typer.Typer(help="A/B tests of model versions served by `edgedeploy serve`.", no_args_is_help=True)


def serve(repo: Path = typer.Argument(..., help="Model repository: REPO/NAME/VERSION/ with a model (and config.yaml) in each."),
          host: str = typer.Option("127.0.0.1", help="Address to listen on (other than loopback needs a token or "
                                                     "--allow-unauthenticated)."),
          port: int = typer.Option(8000, help="HTTP port 0..65535 (0: any free port, printed once bound)."),
          grpc_port: int = typer.Option(8001, "--grpc-port",
                                        help="KServe v2 gRPC port 0..65535 (0: any free port; -1: no gRPC)."),
          memory_budget: str = typer.Option(None, "--memory-budget", help="Memory all loaded models may hold, e.g. 512MB."),
          threads: int = typer.Option(None, min=1, help="Threads of the inference pool shared by all models."),
          max_body: str = typer.Option("64MB", "--max-body", help="Largest inference request body (a model's inputs "
                                                                  "bound it further)."),
          max_json: str = typer.Option("32MB", "--max-json", help="Largest JSON-only inference body (decoding JSON "
                                                                  "takes ~10x its size: send larger tensors binary)."),
          max_inflight: int = typer.Option(64, "--max-inflight", min=1,
                                           help="Inference requests at once; more get 503 with Retry-After."),
          timeout: float = typer.Option(30.0, min=0.001, help="Seconds an inference request may take."),
          read_timeout: float = typer.Option(15.0, "--read-timeout", min=0.1,
                                             help="Seconds a client may take to send its request headers, and its body."),
          poll: float = typer.Option(2.0, min=0, help="Seconds between fallback rescans of the repository (0: no watcher)."),
          settle: float = typer.Option(2.0, min=0, help="Seconds a new version directory without READY must stay unchanged "
                                                        "before it is loaded."),
          token_file: Path = typer.Option(None, "--token-file", help="File holding the inference token (or set "
                                                                     "EDGEDEPLOY_TOKEN)."),
          enable_management: bool = typer.Option(False, "--enable-management",
                                                 help="Turn on the management API (uploads, load/unload, A/B tests)."),
          management_token_file: Path = typer.Option(None, "--management-token-file",
                                                     help="File holding the management token (or set "
                                                          "EDGEDEPLOY_MANAGEMENT_TOKEN); required by --enable-management."),
          allow_unauthenticated: bool = typer.Option(False, "--allow-unauthenticated",
                                                     help="Serve on a non-loopback address without an inference token."),
          tls_cert: Path = typer.Option(None, "--tls-cert", help="Server certificate chain (PEM): serve HTTPS and gRPC over TLS."),
          tls_key: Path = typer.Option(None, "--tls-key", help="Private key of --tls-cert (PEM)."),
          tls_client_ca: Path = typer.Option(None, "--tls-client-ca",
                                             help="CA (PEM) whose certificates clients must present (mutual TLS)."),
          trusted_key: list[Path] = typer.Option(None, "--trusted-key",
                                                 help="Public key (.pub) or key directory: every version must be signed "
                                                      "by one (repeatable)."),
          signing_key: Path = typer.Option(None, "--signing-key", help="Private key that signs uploaded versions."),
          huge_pages: bool = typer.Option(True, "--huge-pages/--no-huge-pages",
                                          help="Restart once with glibc's huge-page tunable, so that models loaded "
                                               "with memory_optimization run as fast as with an arena."),
          json_: bool = typer.Option(False, "--json", help="Print the start-up summary as JSON.")):
    """Serve every model of REPO over HTTP and gRPC (KServe v2 protocol) within a memory budget, with hot
    updates and A/B tests; management off unless enabled, behind its own token."""
    from edgedeploy.serving.auth import LOOPBACK, load_token
    from edgedeploy.serving.memory import HUGE_PAGES_TUNABLE, huge_pages_active, huge_pages_environ, kernel_huge_pages
    from edgedeploy.serving.server import TLS, ModelServer, ServerSettings, run
    from edgedeploy.units import parse_bytes

    for flag, value, low in (("--port", port, 0), ("--grpc-port", grpc_port, -1)):
        if not low <= value <= 65535:  # checked here, not by typer, so the answer is one line and exit 2
            raise UserError(f"{flag} {value} is not a port; give {low}..65535")
    inference_token = load_token(file=token_file, env="EDGEDEPLOY_TOKEN", what="inference token")
    management_token = load_token(file=management_token_file, env="EDGEDEPLOY_MANAGEMENT_TOKEN", what="management token")
    if enable_management and management_token is None:
        raise UserError("--enable-management needs a management token: --management-token-file FILE or "
                        "EDGEDEPLOY_MANAGEMENT_TOKEN")
    if host not in LOOPBACK and inference_token is None:
        print(f"edgedeploy: warning: serving on {host} without an inference token: anyone who reaches the port "
              "can run the models", file=sys.stderr)
        if not allow_unauthenticated:
            raise UserError(f"--host {host} is reachable from other machines and no inference token is set; give "
                            "--token-file (or EDGEDEPLOY_TOKEN), or --allow-unauthenticated if that is intended")
    if (tls_cert is None) != (tls_key is None) or (tls_client_ca is not None and tls_cert is None):
        raise UserError("TLS needs both --tls-cert and --tls-key (and --tls-client-ca only with them)")
    tls = TLS(certfile=tls_cert, keyfile=tls_key, client_ca=tls_client_ca) if tls_cert else None
    trusted = signer = None
    if trusted_key:
        from edgedeploy.security.keys import load_public_keys
        trusted = load_public_keys(trusted_key)
    if signing_key:
        from edgedeploy.security.keys import load_private_key
        signer = load_private_key(signing_key)

    tunables = os.environ.get("GLIBC_TUNABLES", "").split(":")
    if huge_pages and HUGE_PAGES_TUNABLE not in tunables and kernel_huge_pages():
        # glibc reads its tunables at process start only: start this same command again with it
        os.execve(sys.executable, [sys.executable, *sys.argv], huge_pages_environ())
    if huge_pages and not huge_pages_active():
        logging.getLogger(__name__).info("huge pages are not available here; serving without them")

    settings = ServerSettings(
        memory_budget=parse_bytes(memory_budget, field='--memory-budget') if memory_budget else None, threads=threads,
        max_body_bytes=parse_bytes(max_body, field='--max-body'), max_json_bytes=parse_bytes(max_json, field='--max-json'),
        timeout_s=timeout, poll_s=poll, settle_s=settle,
        management=enable_management, inference_token=inference_token, management_token=management_token,
        max_inflight=max_inflight, read_timeout_s=read_timeout)
    from edgedeploy.serving.repository import Repository
    server = ModelServer(Repository(repo, trusted_keys=trusted, signing_key=signer), settings)
    rows = [{"model": n, "versions": server.repo.versions(n), "serving": v}
            for n, v in sorted(server.serving.table().items())]
    scheme = "https" if tls else "http"

    def started(http_port: int, grpc_bound: int | None) -> None:
        summary = {"url": f"{scheme}://{host}:{http_port}", "port": http_port, "grpc_port": grpc_bound,
                   "tls": tls is not None, "mutual_tls": tls is not None and tls.client_ca is not None,
                   "management": enable_management, "inference_token": inference_token is not None,
                   "signed_versions_only": trusted is not None, "memory_budget": settings.memory_budget,
                   "models": rows}
        if json_:
            emit_json(summary)
        else:
            console.print(table(f"serving {server.repo.root}", ["model", "versions", "serving"],
                                [[r["model"], ", ".join(map(str, r["versions"])), r["serving"]] for r in rows]))
            budget = fmt_bytes(settings.memory_budget) if settings.memory_budget else "none"
            grpc_text = f"  gRPC: {host}:{grpc_bound}" if grpc_bound else ""
            console.print(f"{summary['url']}/v2{grpc_text}  memory budget: {budget}  management: "
                          f"{'on' if enable_management else 'off'}  (Ctrl-C stops after in-flight requests)")
        sys.stdout.flush()

    run(server, host=host, port=port, grpc_port=None if grpc_port < 0 else grpc_port, tls=tls, on_started=started)


def _fetch_ab(model: str, repo: Path | None, url: str | None) -> dict:
    if url:
        import httpx

        try:
            r = httpx.get(f"{url.rstrip('/')}/v2/ab/{model}", timeout=10)
        except httpx.HTTPError as exc:
            raise UserError(f"--url {url}: cannot reach the server ({exc}); is `edgedeploy serve` running there?") from None
        if r.status_code != 200:
            raise UserError(f"--url {url}: {r.json().get('error', r.text)}")
        return r.json()
    if repo is None:
        raise UserError("give the repository (the server saves A/B results in REPO/.ab/) or --url of a running server")
    path = Path(repo) / ".ab" / f"{model}.json"
    if not path.is_file():
        raise UserError(f"no A/B results for {model!r} in {path.parent}; start a test with PUT /v2/ab/{model}")
    return json.loads(path.read_text())


@ab_app.command("report")
def report(model: str = typer.Argument(..., help="The model under test."),
           repo: Path = typer.Argument(None, help="Model repository (reads REPO/.ab/MODEL.json)."),
           url: str = typer.Option(None, help="A running server instead, e.g. http://127.0.0.1:8000."),
           min_samples: int = typer.Option(100, min=1, help="Requests per variant before promoting."),
           max_slowdown: float = typer.Option(0.10, min=0, help="Median slow-down that is too much (0.10 = 10%)."),
           min_agreement: float = typer.Option(0.95, min=0, max=1, help="Least share of outputs agreeing with the baseline."),
           alpha: float = typer.Option(0.05, min=0.0001, max=0.5, help="Significance level."),
           json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Compare the variants of an A/B test with statistical tests; recommend promote, keep or rollback."""
    from edgedeploy.serving.ab import report as ab_report

    r = ab_report(_fetch_ab(model, repo, url), min_samples=min_samples, max_slowdown=max_slowdown,
                  min_agreement=min_agreement, alpha=alpha)
    if json_:
        return emit_json(r)
    rows = []
    for k in ("baseline", "candidate"):
        s = r[k]
        rows.append([k, s["version"], s["requests"], f"{s['error_rate']:.2%}", fmt_ms(s["p50_ms"]), fmt_ms(s["p99_ms"])])
    console.print(table(f"A/B test of {model} (candidate share {r['weight']:.0%})",
                        ["variant", "version", "requests", "errors", "p50 ms", "p99 ms"], rows))
    agree = "-" if r["agreement"] is None else f"{r['agreement']:.1%} of {r['compared']} shadow runs"
    slow = "-" if r["slowdown"] is None else f"{r['slowdown']:+.1%} (p={r['latency_p']:.3g})"
    console.print(f"median latency change: {slow}; error rates p={r['error_p']:.3g}; agreement with baseline: {agree}")
    console.print(f"recommendation: [bold]{r['recommendation']}[/bold] — {'; '.join(r['reasons'])}")
    console.print(f"method: {r['method']}")
