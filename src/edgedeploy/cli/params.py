"""Typed, bounded command-line parameters shared by the commands.

Choices are the vocabulary's enums (typer lists them in ``--help`` and refuses anything else
while parsing); numbers carry their bounds; a tensor the user asks for is checked against the
memory this machine has *before* anything is allocated.
"""

from __future__ import annotations

import logging
import math
import os
from enum import StrEnum
from pathlib import Path

import typer

from edgedeploy.errors import UserError
from edgedeploy.units import fmt_bytes
from edgedeploy.vocab import RUNTIME_PRECISIONS, Precision

log = logging.getLogger("edgedeploy.cli")

CORES = os.cpu_count() or 1
MAX_THREADS = CORES * 4

#: precisions a device's figures exist for (``auto`` means nothing to an estimate)
HardwarePrecision = StrEnum("HardwarePrecision", {p.name: p.value for p in Precision if p is not Precision.AUTO})
#: precisions an engine applies at run time to an FP32 model (what ``bench`` can compare)
RuntimePrecision = StrEnum("RuntimePrecision", {p.name: p.value for p in RUNTIME_PRECISIONS})


def _warn_threads(values) -> None:
    for n in values if isinstance(values, (list, tuple)) else [values]:
        if n is not None and n > CORES:
            log.warning("--threads %d is above the %d cores of this machine: the threads will contend for them, "
                        "which is usually slower", n, CORES)


def threads_option(default=None, help: str = "Intra-op threads (default: the engine's).") -> typer.models.OptionInfo:
    """``--threads``: 1..cores x 4, with a warning above the core count."""
    return typer.Option(default, "--threads", min=1, max=MAX_THREADS, callback=_check_threads,
                        help=f"{help} 1..{MAX_THREADS} (4 x the {CORES} cores here).")


def _check_threads(value):
    _warn_threads(value)
    return value


def available_memory() -> int:
    """Bytes this process could still allocate (psutil's 'available')."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(shape, *, what: str, itemsize: int = 4, copies: int = 2) -> None:
    """Refuse a tensor of ``shape`` (``copies`` of it live at once: input and engine buffers) larger than
    the memory available here, before allocating it."""
    dims = [int(d) for d in shape if d is not None]
    need = math.prod(dims) * itemsize * copies
    have = available_memory()
    if need > have:
        raise UserError(f"{what} needs about {fmt_bytes(need)} for its input tensors; this machine has "
                        f"{fmt_bytes(have)} available: use a smaller shape or batch")


def check_output_path(path: Path | None, *, flag: str, directory: bool = False) -> Path | None:
    """Refuse an output path that cannot be written, before any work: one that is a directory (or,
    for ``directory=True``, a file), whose parent is not a directory, or where we may not write."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if str(path) in ("", "-"):
        raise UserError(f"{flag} {str(path)!r}: expected a file path")
    if directory:
        if path.exists() and not path.is_dir():
            raise UserError(f"{flag} {path}: exists and is not a directory; give a directory path")
    elif path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file path, e.g. {path / 'out'}")
    parent = path if directory and path.is_dir() else path.parent
    ancestor = parent
    while not ancestor.exists():  # the folders still to be made must go under a writable directory
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{flag} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK) or _pseudo_fs(ancestor):
        raise UserError(f"{flag} {path}: cannot write in {ancestor} (permission denied or not a real "
                        "file system); choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: the file exists and is not writable")
    return path


def _pseudo_fs(path: Path) -> bool:
    """/proc and /sys accept no new files whatever their mode bits say."""
    resolved = path.resolve()
    return any(resolved == Path(p) or Path(p) in resolved.parents for p in ("/proc", "/sys"))


def check_input_file(path: Path, *, flag: str) -> Path:
    """A config file that must exist, be a regular file and be UTF-8 text."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{flag} {path}: not found")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; expected a YAML file")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{flag} {path}: is not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML") from None
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot be read ({exc.strerror})") from None
    return path
