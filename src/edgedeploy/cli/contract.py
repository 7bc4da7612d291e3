"""The exit-code contract of every command, applied in one place (:func:`edgedeploy.cli.main`).

======  =================================================================================
exit    meaning
======  =================================================================================
0       done: the command did its job and every target it checked was met
1       ran, but the verdict is negative: a target not met, problems found, every row failed
2       bad input or usage: one line says what was wrong and what to do
3       internal error: one line with the path of a log holding the traceback; please report it
======  =================================================================================

The CLI framework is typer, pinned with ``==`` in pyproject: since 0.26 typer ships its own
copy of click (``typer._click``), so the exceptions to catch are typer's, not the public
``click`` package's (whose classes never match). ``tests/cli`` drives the real entry point, so
an upgrade that moves them fails there first.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer==0.29.2's click (see above)

from edgedeploy.errors import EXIT_INTERNAL, EXIT_USAGE, did_you_mean

__all__ = ["EPILOG", "NoArgsIsHelpError", "UsageError", "crash_log", "json_stdout", "usage_line"]

EPILOG = ("Exit codes (every command): 0 done, targets met; 1 ran but the verdict is negative "
          "(targets not met, problems found, every row failed); 2 bad input or usage (one line says what); "
          "3 internal error (one line with the log file holding the details; please report it).")


def one_line(text: str) -> str:
    """``text`` with its whitespace (newlines included) collapsed, so an error is one line."""
    return " ".join(str(text).split())


def _context_for(command, args: list[str]):
    """The click context of the (sub)command ``args`` name, parsed leniently; None if there is none."""
    try:
        ctx = command.make_context("edgedeploy", list(args), resilient_parsing=True)
        while hasattr(ctx.command, "resolve_command"):
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                break
            name, sub, rest = ctx.command.resolve_command(ctx, rest)
            if sub is None:
                break
            ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=True)
        return ctx
    except Exception:  # a hint only: without it the line still says what was wrong
        return None


def usage_line(exc: UsageError, command=None, args: list[str] = ()) -> str:
    """What was wrong, the usage, and the --help hint, on one line.

    A parser error carries no context (``--recommend`` given no value); then the context is
    found again from ``command`` (the root click command) and ``args``.
    """
    msg = one_line(exc.format_message()).rstrip(".").replace("Value error, ", "")
    bad = re.search(r"'([^']*)' is not one of ((?:'[^']*'(?:, )?)+)", msg)
    if bad:  # a choice mistyped: name the closest one
        msg += did_you_mean(bad.group(1), re.findall(r"'([^']*)'", bad.group(2)))
    ctx = exc.ctx or (_context_for(command, args) if command is not None else None)
    if ctx is None:
        return f"edgedeploy: error: {msg}; try 'edgedeploy --help'"
    usage = one_line(ctx.get_usage()).removeprefix("Usage: ")
    return f"edgedeploy: error: {msg}; usage: {usage}; try '{ctx.command_path} --help'"


def log_dir() -> Path:
    """Where crash logs go: $EDGEDEPLOY_LOG_DIR, else the user's log directory."""
    if os.environ.get("EDGEDEPLOY_LOG_DIR"):
        return Path(os.environ["EDGEDEPLOY_LOG_DIR"])
    import platformdirs

    return platformdirs.user_log_path("edgedeploy")


def crash_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write ``exc``'s traceback, the command line and versions to a new log file; its path (None if unwritable)."""
    from edgedeploy import __version__

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")  # one file per crash
    text = (f"edgedeploy {__version__}, python {sys.version.split()[0]}, {stamp}\n"
            f"argv: {json.dumps(argv)}\n\n" + "".join(traceback.format_exception(exc)))
    try:
        directory = log_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"crash-{stamp}-{os.getpid()}.log"
        path.write_text(text)
        return path
    except OSError:
        return None


def internal_error_line(exc: BaseException, argv: list[str]) -> str:
    path = crash_log(exc, argv)
    where = f"details in {path}" if path else "the log could not be written"
    return (f"edgedeploy: internal error: {type(exc).__name__}: {one_line(exc)[:300]}; "
            f"please report it; {where}")


@contextmanager
def json_stdout(enabled: bool):
    """Under ``--json`` stdout carries exactly one JSON document: everything else printed while the
    command runs (ours, and third-party progress bars written straight to file descriptor 1) goes to
    stderr. Yields the :class:`~edgedeploy.cli.output.JsonChannel` that
    :func:`~edgedeploy.cli.output.emit_json` writes the document to."""
    from edgedeploy.cli import output

    if not enabled:
        channel = output.JsonChannel(sys.stdout)
        token = output.JSON_CHANNEL.set(channel)
        try:
            yield channel
        finally:
            output.JSON_CHANNEL.reset(token)
        return
    try:
        real_fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stdout (tests): nothing below Python to move
        real_fd = None
    sys.stdout.flush()
    saved_sys = sys.stdout
    if real_fd is None:
        stream = saved_sys
    else:
        sys.stderr.flush()
        keep = os.dup(real_fd)
        os.dup2(sys.stderr.fileno(), real_fd)
        stream = os.fdopen(keep, "w", encoding="utf-8", closefd=True)
    sys.stdout = sys.stderr
    channel = output.JsonChannel(stream)
    token = output.JSON_CHANNEL.set(channel)
    try:
        yield channel
    finally:
        output.JSON_CHANNEL.reset(token)
        sys.stdout = saved_sys
        if real_fd is not None:
            stream.flush()
            os.dup2(stream.fileno(), real_fd)
            stream.close()


def error_document(code: int, message: str) -> dict:
    """The one JSON document a failed ``--json`` command writes to stdout."""
    kind = {1: "verdict", EXIT_USAGE: "usage", EXIT_INTERNAL: "internal"}.get(code, "error")
    return {"error": {"kind": kind, "message": message}, "exit_code": code}
