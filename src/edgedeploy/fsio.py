"""Writing files and scratch directories so that nothing is half-written or left behind.

- :func:`atomic_write`: a temporary file beside the target, renamed over it (``os.replace``) only
  when complete; removed on any failure (an exception, Ctrl-C, SIGTERM: ``edgedeploy.cli.main``
  turns SIGTERM into an exception so these ``finally`` blocks run).
- :func:`scratch_dir`: a working directory under ``$TMPDIR`` named ``edgedeploy-<kind>-<pid>-*``,
  removed on exit; :func:`sweep_stale` removes those a killed process (SIGKILL, power loss) left:
  the owning pid is gone and the directory is older than this process.
- Outputs honour the user's umask: ``mkstemp``/``mkdtemp`` create 0600/0700 (unreadable by a
  service user); :func:`match_umask` gives them the mode ``open()``/``mkdir()`` would have.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

PREFIX = "edgedeploy-"
_OWNED = re.compile(r"^edgedeploy-[a-z]+-(\d+)-")


def umask() -> int:
    """The process umask, read without changing it (Linux reports it in /proc; elsewhere set and restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def match_umask(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``open()`` (files: 0666) or ``mkdir()`` (dirs: 0777) would under the umask."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~umask())


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None):
    """Yield a file to write ``path``'s new content to; it replaces ``path`` only once complete and synced.

    The temporary file lives beside ``path`` (same file system, so the rename is atomic) and is
    removed on failure; the result has the mode the umask gives new files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".part")
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        match_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_scratch_dir(kind: str, *, parent: str | os.PathLike | None = None) -> Path:
    """A new ``edgedeploy-<kind>-<pid>-*`` directory (under ``$TMPDIR`` unless ``parent``); the caller removes it."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-", dir=parent))


@contextmanager
def scratch_dir(kind: str, *, parent: str | os.PathLike | None = None):
    """A scratch directory for the block, removed with its content when the block ends, however it ends."""
    path = make_scratch_dir(kind, parent=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def process_start_time() -> float:
    """When this process started (epoch seconds)."""
    import psutil

    return psutil.Process().create_time()


def sweep_stale(tmpdir: str | os.PathLike | None = None) -> list[Path]:
    """Remove ``edgedeploy-<kind>-<pid>-*`` scratch directories (and files) in ``tmpdir`` whose process is gone
    and that are older than this process; return what was removed. Another running edgedeploy's are kept."""
    root = Path(tmpdir or tempfile.gettempdir())
    started = process_start_time()
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _OWNED.match(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            st = entry.lstat()
            if st.st_mtime >= started or st.st_uid != os.getuid():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def sweep_partials(directory: str | os.PathLike, name: str) -> list[Path]:
    """Remove ``.<name>.<pid>.*.part`` files/dirs in ``directory`` that a killed edgedeploy left (pid gone)."""
    removed = []
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\..*\.part$")
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
