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
          host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8000, min=0, max=65535, help="Port (0: any free port)."),
          memory_budget: str = typer.Option(None, "--memory-budget", help="Memory all loaded models may hold, e.g. 512MB."),
          threads: int = typer.Option(None, min=1, help="Threads of the inference pool shared by all models."),
          max_body: str = typer.Option("64MB", "--max-body", help="Largest inference request body."),
          timeout: float = typer.Option(30.0, min=0.001, help="Seconds an inference request may take."),
          poll: float = typer.Option(2.0, min=0, help="Seconds between scans for new versions (0: off)."),
          huge_pages: bool = typer.Option(True, "--huge-pages/--no-huge-pages",
                                          help="Restart once with glibc's huge-page tunable, so that models loaded "
                                               "with memory_optimization run as fast as with an arena."),
          json_: bool = typer.Option(False, "--json", help="Print the start-up summary as JSON.")):
    """Serve every model of REPO over HTTP (KServe v2 protocol) within a memory budget, with hot updates and A/B tests."""
    from edgedeploy.units import parse_bytes
    from edgedeploy.serving.memory import HUGE_PAGES_TUNABLE, huge_pages_active, huge_pages_environ, kernel_huge_pages
    from edgedeploy.serving.server import ModelServer, ServerSettings, run

    tunables = os.environ.get("GLIBC_TUNABLES", "").split(":")
    if huge_pages and HUGE_PAGES_TUNABLE not in tunables and kernel_huge_pages():
        # glibc reads its tunables at process start only: start this same command again with it
        os.execve(sys.executable, [sys.executable, *sys.argv], huge_pages_environ())
    if huge_pages and not huge_pages_active():
        logging.getLogger(__name__).info("huge pages are not available here; serving without them")

    settings = ServerSettings(memory_budget=parse_bytes(memory_budget, field='--memory-budget') if memory_budget else None, threads=threads,
                              max_body_bytes=parse_bytes(max_body, field='--max-body'), timeout_s=timeout, poll_s=poll)
    server = ModelServer(repo, settings)
    rows = [{"model": n, "versions": server.repo.versions(n), "serving": v}
            for n, v in sorted(server.serving.table().items())]
    if json_:
        emit_json({"url": f"http://{host}:{port}", "memory_budget": settings.memory_budget, "models": rows})
    else:
        console.print(table(f"serving {server.repo.root}", ["model", "versions", "serving"],
                            [[r["model"], ", ".join(map(str, r["versions"])), r["serving"]] for r in rows]))
        budget = fmt_bytes(settings.memory_budget) if settings.memory_budget else "none"
        console.print(f"http://{host}:{port}/v2  memory budget: {budget}  (Ctrl-C stops after in-flight requests)")
    run(server, host=host, port=port)


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
