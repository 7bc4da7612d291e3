"""The model repository on disk: ``REPO/NAME/VERSION/`` with a model and a small config.

A version directory holds one model (an ``.onnx`` file, a Paddle model, or the contents of a
deployment directory from ``edgedeploy deploy``, whose ``manifest.json`` is verified at load) and optionally ``config.yaml``
(``config.json`` also works); a ``config.yaml`` in ``REPO/NAME/`` gives defaults for every
version. ``SHA256SUMS`` (``sha256sum`` format), when present, is checked before a load.
Versions are immutable once loaded: the digest of every file is recorded at first load and a
version whose files later change is refused. A version directory is complete when it holds
``READY`` or has not changed for the settle time (so a copy in progress is not loaded). A
symlinked model or version directory is reported and skipped; a symlink inside a version that
points out of it is refused. With ``trusted_keys``, every version must be a directory signed with
``edgedeploy.security.signing`` by one of them; uploads are signed with ``signing_key``.

    >>> repo = Repository("models/")
    >>> repo.versions("picodet")            # [1, 2]
    >>> v = repo.version("picodet", 2)       # ModelVersion: path, config, model file, digest
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import logging

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgedeploy.errors import UserError, did_you_mean
from edgedeploy.util import sha256_file

log = logging.getLogger(__name__)

CONFIG_NAMES = ("config.yaml", "config.yml", "config.json")
SUMS = "SHA256SUMS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MODEL_SUFFIXES = (".onnx", ".pdmodel", ".json")
READY = "READY"  # an empty file: "this version directory is complete" (else it must settle first)
_NOT_MODELS = frozenset({*CONFIG_NAMES, "manifest.json"})


class ModelNotFound(UserError):
    """An unknown model or version (HTTP 404)."""


class ModelConfig(BaseModel):
    """How one model version is served; keys are checked, unknown ones refused with a suggestion.

    model: the model file inside the version directory (default: the only model there).
    engine / precision / threads: as for ``edgedeploy run`` (precision matters to OpenVINO).
    instances: how many requests may run this model at once; instances share weights.
    memory_optimization: no arena (ORT): a request's activations are freed when it ends, so memory
        held between requests is the weights alone, and it comes back when the model is unloaded.
        Worth it for a model with large activations (PicoDet 800x608: 46 MiB a run); a small model
        (PP-LCNet 224x224: an arena of a few MB) runs faster with ``false``, as allocating each run
        costs it more than its arena holds.
    warmup: input name → shape (``1x3x224x224``) run once after a load; default: every input's
        static shape, dynamic dimensions as 1 (batch) or 224.
    load_order: models with ``preload`` load at start-up in ascending order; under memory
        pressure, ties between equally old models evict the higher order first.
    max_output_diff: a hot update is refused if the new version's outputs on the warm-up input
        differ from the serving version's by more than this (None: shapes are checked only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    engine: Literal["onnxruntime", "openvino", "paddle", "auto"] = "onnxruntime"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    threads: int | None = Field(default=None, ge=1)
    instances: int = Field(default=1, ge=1, le=64)
    memory_optimization: bool = True
    warmup: dict[str, str] | None = None
    preload: bool = False
    load_order: int = 0
    max_output_diff: float | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class ModelVersion:
    """One version on disk: where it is, how to serve it, and the sha256 of its files."""

    name: str
    version: int
    path: Path
    model_file: Path
    config: ModelConfig
    digest: str

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def check_name(name: str, what: str = "model name") -> str:
    """A model name is one path component of letters, digits, '_', '.', '-': never '..' or '/'."""
    if not _NAME.match(name) or name in (".", "..") or ".." in name:
        raise UserError(f"{what} {name!r} is not allowed: use letters, digits, '_', '.', '-' "
                        "(no '/', no '..'); it names a directory inside the repository")
    return name


def parse_version(text: str | int) -> int:
    try:
        v = int(text)
    except (TypeError, ValueError):
        v = 0
    if v < 1 or str(text).strip() != str(v):
        raise ModelNotFound(f"version {text!r} is not a version: versions are positive integers (directory names)")
    return v


def _read_config(path: Path, base: dict) -> dict:
    for name in CONFIG_NAMES:
        f = path / name
        if f.is_file():
            try:
                data = json.loads(f.read_text()) if f.suffix == ".json" else yaml.safe_load(f.read_text())
            except (ValueError, yaml.YAMLError) as exc:
                raise UserError(f"{f}: not valid {f.suffix[1:].upper()} ({str(exc).splitlines()[0]}); fix the file") from None
            if data is None:
                return dict(base)
            if not isinstance(data, dict):
                raise UserError(f"{f}: expected a mapping of settings, got {type(data).__name__}")
            return {**base, **data}
    return dict(base)


def make_config(data: dict, where: Path) -> ModelConfig:
    unknown = [k for k in data if k not in ModelConfig.model_fields]
    if unknown:
        raise UserError(f"{where}: unknown setting {unknown[0]!r}{did_you_mean(unknown[0], ModelConfig.model_fields)}; "
                        f"known: {', '.join(ModelConfig.model_fields)}")
    try:
        return ModelConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{where}: setting {'.'.join(map(str, err['loc']))}: {err['msg']} "
                        f"(given {err.get('input')!r})") from None


def digest_dir(path: Path) -> str:
    """sha256 over every file's relative name and content, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        h.update(file_sha256(f).encode())
    return h.hexdigest()


file_sha256 = sha256_file  # one implementation, in edgedeploy.util


def _check_sums(path: Path) -> None:
    sums = path / SUMS
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        want, _, name = line.strip().partition(" ")
        f = path / name.strip().lstrip("*")
        if not f.resolve().is_relative_to(path.resolve()):
            raise UserError(f"{sums}: {name.strip()!r} points outside the version directory")
        if not f.is_file():
            raise UserError(f"{path}: {SUMS} lists {name.strip()!r} but the file is missing; re-upload the version")
        got = file_sha256(f)
        if got != want.lower():
            raise UserError(f"{f}: sha256 {got[:16]}… does not match {SUMS} ({want[:16]}…); "
                            "the file is corrupt or incomplete: re-upload the version")


def _check_links(path: Path) -> None:
    """Refuse a symlink inside a version directory that points out of it (a model file that is
    really someone else's file); symlinks are not followed into subdirectories."""
    root = path.resolve()
    for p in path.rglob("*"):
        if p.is_symlink() and not p.resolve().is_relative_to(root):
            raise UserError(f"{p} is a symlink to {p.resolve()}, outside the version directory; refusing to serve "
                            "it: copy the file in")


def fingerprint(path: Path) -> str:
    """Cheap identity of a directory's current contents: names, sizes and mtimes (no hashing)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def settled(path: Path, settle_s: float) -> bool:
    """A version directory is complete when it holds ``READY`` or nothing in it changed for ``settle_s``."""
    if (path / READY).is_file():
        return True
    newest = max((p.lstat().st_mtime for p in [path, *path.rglob("*")]), default=0.0)
    return time.time() - newest >= settle_s


def _find_model(path: Path, config: ModelConfig) -> Path:
    if config.model:
        f = (path / config.model).resolve()
        if not f.is_relative_to(path.resolve()):
            raise UserError(f"{path}: model {config.model!r} points outside the version directory")
        if not f.exists():
            raise UserError(f"{path}: config names model {config.model!r}, which is not there")
        return f
    models = sorted(p for p in path.iterdir() if p.suffix in _MODEL_SUFFIXES and p.name not in _NOT_MODELS)
    if len(models) == 1:
        return models[0]
    if not models and any(p.suffix == ".pdiparams" for p in path.iterdir()):
        return path
    raise UserError(f"{path}: expected exactly one model (.onnx, .pdmodel/.json + .pdiparams) or 'model:' in "
                    f"config.yaml; found {[p.name for p in models] or 'none'}")


class Repository:
    """``REPO/NAME/VERSION/`` on disk. Thread-safe; every path it returns lies inside ``root``."""

    def __init__(self, root: str | Path, *, trusted_keys: list | None = None, signing_key=None):
        """``trusted_keys``: Ed25519 public keys; when given, every version must be a directory signed by
        one of them (``edgedeploy.security.signing``) or it is refused. ``signing_key``: the private key
        that signs versions this repository writes (uploads), so that they verify too."""
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise UserError(f"model repository {root} is not a directory; expected REPO/NAME/VERSION/ with a model in each")
        self.trusted_keys = list(trusted_keys) if trusted_keys else None
        self.signing_key = signing_key
        self.problems: dict[str, str] = {}  # entry → why it is skipped (reported by index, logged once)
        self._digests: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def _problem(self, entry: str, why: str) -> None:
        if self.problems.get(entry) != why:
            log.warning("repository entry %s skipped: %s", entry, why)
        self.problems[entry] = why

    def forget(self, name: str, version: int) -> None:
        """Drop the digest recorded at a failed load, so a re-admitted or re-copied version can load."""
        with self._lock:
            self._digests.pop((name, version), None)

    def _dir(self, name: str, version: int | None = None) -> Path:
        check_name(name)
        p = self.root / name if version is None else self.root / name / str(version)
        if not p.resolve().is_relative_to(self.root):  # a symlink out of the repository
            raise UserError(f"model {name!r} resolves outside the repository {self.root}; refusing to serve it")
        return p

    def names(self) -> list[str]:
        """Every model with at least one version; an unsafe entry (a symlinked directory) is reported
        in :attr:`problems` and skipped, so one bad entry never hides the others."""
        out = []
        for p in sorted(self.root.iterdir()):
            if not _NAME.match(p.name) or ".." in p.name:
                continue
            if p.is_symlink():
                self._problem(p.name, f"{p} is a symlink (to {p.resolve()}); a model directory must be a real "
                                      "directory inside the repository")
                continue
            if p.is_dir() and self.versions(p.name):
                out.append(p.name)
        return out

    def versions(self, name: str) -> list[int]:
        d = self._dir(name)
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            if p.name.isdigit() and int(p.name) > 0 and p.is_dir():
                if p.is_symlink():
                    self._problem(f"{name}/{p.name}", f"{p} is a symlink; a version must be a real directory")
                    continue
                out.append(int(p.name))
        return sorted(out)

    def latest(self, name: str) -> int:
        vs = self.versions(name)
        if not vs:
            raise ModelNotFound(f"unknown model {name!r}{did_you_mean(name, self.names())}; "
                                f"the repository has {', '.join(self.names()) or 'no models'}")
        return vs[-1]

    def version(self, name: str, version: int | None = None, *, verify: bool = True) -> ModelVersion:
        """The version's config and model file; ``verify`` checks SHA256SUMS and immutability."""
        v = self.latest(name) if version is None else version
        if v not in self.versions(name):
            if not self.versions(name):
                self.latest(name)  # raises "unknown model"
            raise ModelNotFound(f"model {name!r} has no version {v}; it has {self.versions(name)}")
        path = self._dir(name, v)
        config = make_config(_read_config(path, _read_config(self._dir(name), {})), path)
        _check_links(path)
        model_file = _find_model(path, config)
        digest = ""
        if verify:
            _check_sums(path)
            if self.trusted_keys is not None:
                from edgedeploy.security.signing import verify_directory

                verify_directory(path, self.trusted_keys)
            elif (path / "manifest.json").is_file():  # a deployment directory from `edgedeploy deploy`
                from edgedeploy.deploy.manifest import verify as verify_deployment

                verify_deployment(path)
            digest = digest_dir(path)
            with self._lock:
                first = self._digests.setdefault((name, v), digest)
            if first != digest:
                raise UserError(f"{path} changed on disk after it was loaded; versions are immutable: "
                                f"put the new files in a new version directory ({name}/{self.versions(name)[-1] + 1}/)")
        return ModelVersion(name, v, path, model_file, config, digest)

    def add_version(self, name: str, files: dict[str, bytes], *, config_from: int | None = None) -> int:
        """Write ``files`` as the next version of ``name`` (atomically: a temporary directory renamed
        into place), copying the config of version ``config_from`` when no config is given."""
        for fname in files:
            check_name(fname, "file name")
        parent = self._dir(name)
        parent.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".upload-"))
        try:
            for fname, data in files.items():
                (tmp / fname).write_bytes(data)
            if config_from is not None and not any(n in files for n in CONFIG_NAMES):
                for cname in CONFIG_NAMES:
                    src = self._dir(name, config_from) / cname
                    if src.is_file():
                        shutil.copy(src, tmp / cname)
            if self.signing_key is not None:
                from edgedeploy.security.signing import sign_directory

                sign_directory(tmp, self.signing_key, extra={"model": name})
            with self._lock:
                v = (self.versions(name) or [0])[-1] + 1
                tmp.rename(parent / str(v))
            return v
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
