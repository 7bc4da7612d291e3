"""How commands print: ``--json`` to stdout for machines, rich tables for people, progress on stderr."""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgedeploy.units import fmt_bytes, fmt_ms as _fmt_ms

__all__ = ["console", "emit_json", "err_console", "fmt_bytes", "fmt_ms", "progress", "table"]


def fmt_ms(v: float | None) -> str:
    """A cell of a column headed "ms": the number alone (units.fmt_ms, bare)."""
    return _fmt_ms(v, bare=True)

# Piped output is not wrapped at 80 columns: tables stay one row per line for logs and notes.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


@dataclass
class JsonChannel:
    """Where the running command's ``--json`` document goes, and how many it wrote (``main`` adds an
    error document only when none was)."""

    stream: TextIO
    emitted: int = 0


#: the running command's channel (set by :func:`edgedeploy.cli.contract.json_stdout`; unset: sys.stdout)
JSON_CHANNEL: ContextVar[JsonChannel | None] = ContextVar("edgedeploy_json_channel", default=None)


def strict(data):
    """``data`` with every NaN/infinity replaced by None, so the JSON is strict (RFC 8259)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: strict(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict(v) for v in data]
    return data


def emit_json(data) -> None:
    """Write ``data`` as one strict JSON document (non-finite numbers become null) to stdout."""
    channel = JSON_CHANNEL.get()
    stream = channel.stream if channel else sys.stdout
    text = json.dumps(strict(json.loads(json.dumps(data, default=str))), indent=2, allow_nan=False)
    stream.write(text + "\n")
    stream.flush()
    if channel:
        channel.emitted += 1


def table(title: str | None, columns: list[str], rows: list[list], *, justify_right: tuple[str, ...] = ()) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c in justify_right else "left", overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    return t


@contextmanager
def progress(enabled: bool = True):
    """A progress bar on stderr (off under --json or when stderr is not a terminal-like console)."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, disable=not enabled, transient=True)
    with bar:
        yield bar
