"""How commands print: ``--json`` to stdout for machines, rich tables for people, progress on stderr."""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgedeploy.units import fmt_bytes, fmt_ms as _fmt_ms

__all__ = ["console", "emit_json", "err_console", "fmt_bytes", "fmt_ms", "phases", "progress", "table"]


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


HEARTBEAT_S = 10.0  # off a terminal, a command is never silent for longer than this


class Phases:
    """What a long command is doing, reported through one callback: ``say(what, done=None, total=None)``.

    On a terminal the rich bar shows it. Off one (CI logs, pipes), where no bar is drawn, stderr gets
    one line ``COMMAND: what`` per phase, one per 10% of a counted phase, and ``COMMAND: still what
    (N s)`` after :data:`HEARTBEAT_S` without a line. Every phase is also logged (DEBUG) under
    ``edgedeploy.cli.COMMAND``.
    """

    def __init__(self, command: str, bar: Progress, *, lines: bool):
        self.command, self.bar, self.lines = command, bar, lines
        self.task = bar.add_task(command, total=None)
        self.log = logging.getLogger(f"edgedeploy.cli.{command}")
        self.what, self.tenth, self.started = "", None, time.monotonic()
        self.last = self.started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"{command}-progress", daemon=True)
        if lines:
            self._beat.start()

    def __call__(self, what: str, done: int | None = None, total: int | None = None) -> None:
        self.bar.update(self.task, description=what, completed=done or 0, total=total)
        tenth = int(10 * min(done or 0, total) / total) if total else None
        with self._lock:
            new = what != self.what
            if new:
                self.log.debug("%s", what)
                self.started = time.monotonic()
            if self.lines and (new or tenth != self.tenth):
                self._line(what + (f" ({done}/{total}, {10 * tenth}%)" if total and done is not None else ""))
            self.what, self.tenth = what, tenth

    def _line(self, text: str) -> None:
        print(f"{self.command}: {text}", file=sys.stderr, flush=True)
        self.last = time.monotonic()

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, HEARTBEAT_S / 4)):
            with self._lock:
                if self.what and time.monotonic() - self.last >= HEARTBEAT_S:
                    self._line(f"still {self.what} ({time.monotonic() - self.started:.0f} s)")

    def close(self) -> None:
        self._stop.set()
        if self._beat.is_alive():
            self._beat.join()


@contextmanager
def phases(command: str, enabled: bool = True):
    """A :class:`Phases` callback for ``command``: the bar on a terminal, phase lines off one (see there);
    nothing at all when not ``enabled`` (``--json``)."""
    with progress(enabled) as bar:
        say = Phases(command, bar, lines=enabled and not sys.stderr.isatty())
        try:
            yield say
        finally:
            say.close()
