"""Deployment artifacts: a signed directory packed in one tar, fetched over HTTP(S) with resume,
checked (sha256 from the signed desired state, then the directory's own signature) before use.

Order on the device: the tar's sha256 must equal the one in the signed desired state *before*
anything is unpacked; unpacking refuses links, devices and paths outside the target (tarfile's
``data`` filter); then ``verify_directory`` checks the manifest's signature against the device's
trusted keys and every file against the manifest. Any failure removes what was written.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.errors import UserError
from edgedeploy.security.signing import SIGNATURE, VerificationError, sign_directory, verify_directory
from edgedeploy.util import atomic_write, sha256_file

log = logging.getLogger(__name__)

GOLDEN = "golden.npz"  # arrays "in:NAME" (inputs) and "out:NAME" (reference outputs)


class ArtifactRefused(UserError):
    """An artifact the device will not install: wrong digest, bad signature, unsafe archive."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int


def write_golden(path: Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Path:
    with atomic_write(path) as f:
        np.savez(f, **{f"in:{k}": v for k, v in inputs.items()}, **{f"out:{k}": v for k, v in outputs.items()})
    return path


def read_golden(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        ins = {k[3:]: z[k] for k in z.files if k.startswith("in:")}
        outs = {k[4:]: z[k] for k in z.files if k.startswith("out:")}
    return ins, outs


def pack(source: Path, *, model: str, version: int, out_dir: Path, key=None, golden: Path | None = None,
         config: str | None = None) -> Artifact:
    """Pack ``source`` (a model file, or a directory) as the artifact of ``model`` v``version``.

    A directory that is already signed (``manifest.sig``) is packed as it is: its signer is the
    release authority and the devices check it. Otherwise ``golden`` and ``config`` (config.yaml
    text) are added and the directory is signed with ``key``."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"artifact {source} does not exist; expected a model file or a deployment directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".pack-") as tmp:
        stage = Path(tmp) / "a"
        if source.is_dir():
            shutil.copytree(source, stage, symlinks=False)
        else:
            stage.mkdir()
            shutil.copy2(source, stage / source.name)
        if not (stage / SIGNATURE).exists():
            if key is None:
                raise UserError(f"artifact {source} is not signed and no signing key was given")
            if golden is not None:
                shutil.copy2(golden, stage / GOLDEN)
            if config is not None and not (stage / "config.yaml").exists():
                (stage / "config.yaml").write_text(config)
            sign_directory(stage, key, extra={"model": model, "version": version})
        tar_tmp = Path(tmp) / "a.tar"
        with tarfile.open(tar_tmp, "w") as tar:
            for f in sorted(stage.rglob("*")):
                tar.add(f, arcname=str(f.relative_to(stage)), recursive=False)
        digest = sha256_file(tar_tmp)
        dest = out_dir / f"{model}-{version}-{digest[:12]}.tar"
        tar_tmp.replace(dest)
    return Artifact(dest, digest, dest.stat().st_size)


def download(url: str, part: Path, *, sha256: str, size: int | None = None, max_rate: float | None = None,
             timeout_s: float = 30.0) -> tuple[Path, int]:
    """Fetch ``url`` into ``part`` (resuming from what is there with a Range request), check its
    sha256, and rename it to ``part`` without ``.part``. Returns (path, bytes transferred now).
    ``max_rate``: bytes/s, for thin links."""
    import httpx

    part.parent.mkdir(parents=True, exist_ok=True)
    done = part.with_suffix("")
    if done.is_file() and sha256_file(done) == sha256:
        return done, 0
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    got, t0 = 0, time.monotonic()
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout_s, follow_redirects=False) as r:
            if r.status_code == 416 and size is not None and have == size:
                pass  # complete already; the digest decides below
            elif r.status_code not in (200, 206):
                raise ArtifactRefused(f"artifact {url}: HTTP {r.status_code}")
            else:
                mode = "ab" if r.status_code == 206 else "wb"  # a server without Range support sends it all
                if mode == "ab":
                    log.info("resuming %s at byte %d", url, have)
                with open(part, mode) as f:
                    for chunk in r.iter_bytes(64 << 10):
                        f.write(chunk)
                        got += len(chunk)
                        if size is not None and have + got > size:
                            raise ArtifactRefused(f"artifact {url}: more than the {size} bytes announced")
                        if max_rate:
                            ahead = got / max_rate - (time.monotonic() - t0)
                            if ahead > 0:
                                time.sleep(ahead)
    except httpx.HTTPError as exc:
        raise UserError(f"artifact {url}: download interrupted ({exc}); it resumes on the next try") from None
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink()
        raise ArtifactRefused(f"artifact {url}: sha256 {digest[:16]}… is not the signed {sha256[:16]}…; "
                              "refused (tampered or corrupt), nothing unpacked")
    part.replace(done)
    return done, got


def unpack_verified(tar_path: Path, dest: Path, trusted_keys) -> dict:
    """Unpack (safely) into ``dest`` and verify the signed manifest; removes ``dest`` on any failure."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="data")  # no links out, no devices, no absolute or ../ paths
        return verify_directory(dest, trusted_keys)
    except (tarfile.TarError, OSError, VerificationError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArtifactRefused(f"artifact {tar_path.name}: {exc}") from None


def install(staging: Path, slot: Path) -> Path:
    """Move a verified directory, signed manifest and all, into its slot (one rename). The device's
    serving repository requires signatures, so the manifest is checked again at every load."""
    import os

    slot.parent.mkdir(parents=True, exist_ok=True)
    if slot.exists():
        shutil.rmtree(slot)
    os.replace(staging, slot)
    return slot
