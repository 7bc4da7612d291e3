"""Signed directories: a manifest that lists every file, and an Ed25519 signature over it.

Layout::

    DIR/...             the artefact's files (any depth; no symlinks)
    DIR/manifest.json   {"format": 1, "files": {"rel/posix/path": {"sha256": hex, "bytes": n}}, ...extra}
    DIR/manifest.sig    {"format": 1, "algorithm": "ed25519", "key_id": hex, "signature": base64}

The signature covers the exact bytes of ``manifest.json`` (written canonically: sorted keys,
UTF-8), so nothing is re-serialised before checking. :func:`verify_directory` checks, in order:
the signature file, the key (must be trusted), the signature, the manifest's JSON types, every
listed path (relative, inside the directory, a regular file, right size and sha256) and that no
file is present that the manifest does not list. The first failure raises
:class:`VerificationError` naming it; nothing in the directory may be loaded before this passes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgedeploy.errors import UserError
from edgedeploy.security.keys import key_id, load_public_keys
from edgedeploy.util import atomic_write, sha256_file

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RESERVED = frozenset({MANIFEST, SIGNATURE})
# An empty top-level READY file is the model repository's "this copy is complete" marker: it is put
# there after the signed files arrive, carries nothing and is never read, so it is not listed.
MARKER = "READY"


class VerificationError(UserError):
    """A signed directory failed verification; the message names the reason. Nothing may load it."""


def canonical(manifest: dict) -> bytes:
    """The bytes written to (and signed as) ``manifest.json``."""
    return (json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _walk(d: Path) -> Iterable[tuple[str, os.stat_result]]:
    """(relative POSIX path, lstat) of every entry under ``d``, symlinks not followed."""
    for root, dirs, files in os.walk(d, followlinks=False):
        for name in dirs + files:
            p = Path(root, name)
            yield p.relative_to(d).as_posix(), p.lstat()


def list_files(d: Path) -> dict[str, dict]:
    """sha256 and size of every regular file under ``d`` (relative POSIX paths), the manifest's own
    files excepted; a symlink anywhere is refused."""
    files = {}
    for rel, st in sorted(_walk(d)):
        if stat.S_ISLNK(st.st_mode):
            raise UserError(f"{d / rel} is a symlink; a signed directory holds regular files only: copy the target in")
        if stat.S_ISREG(st.st_mode) and rel not in _RESERVED:
            files[rel] = {"sha256": sha256_file(d / rel), "bytes": st.st_size}
    return files


def sign_directory(directory: str | os.PathLike, private_key: Ed25519PrivateKey, *,
                   extra: dict | None = None) -> Path:
    """List every file under ``directory`` in ``manifest.json`` (plus ``extra``) and sign it.

    Returns the manifest's path. Both files are written atomically; an existing manifest and
    signature are replaced (the old manifest is not listed in the new one).
    """
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"{d} is not a directory; give the directory to sign")
    extra = dict(extra or {})
    clash = sorted(set(extra) & {"format", "files"})
    if clash:
        raise ValueError(f"extra may not set {clash}: they are the manifest's own fields")
    files = list_files(d)
    if not files:
        raise UserError(f"{d} holds no files to sign")
    body = canonical({**extra, "format": FORMAT, "files": files})
    sig = {"format": FORMAT, "algorithm": "ed25519", "key_id": key_id(private_key.public_key()),
           "signature": base64.b64encode(private_key.sign(body)).decode()}
    with atomic_write(d / MANIFEST) as f:
        f.write(body)
    with atomic_write(d / SIGNATURE) as f:
        f.write(canonical(sig))
    return d / MANIFEST


def _fail(d: Path, reason: str) -> VerificationError:
    return VerificationError(f"{d}: verification failed: {reason}; refusing to run or load it — re-sign it "
                             "or deploy it again from a trusted source")


def _no_constants(token: str):
    raise ValueError(f"{token} is not valid JSON")


def _read_json(d: Path, name: str):
    p = d / name
    if p.is_symlink():
        raise _fail(d, f"{name} is a symlink")
    if not p.is_file():
        raise _fail(d, f"{name} is missing (the directory is not signed)")
    raw = p.read_bytes()
    try:
        return raw, json.loads(raw, parse_constant=_no_constants)
    except ValueError as exc:
        raise _fail(d, f"{name} is not valid JSON ({exc})") from None


def _check_signature(d: Path, body: bytes, trusted: list[Ed25519PublicKey]) -> str:
    _, sig = _read_json(d, SIGNATURE)
    if not isinstance(sig, dict) or not isinstance(sig.get("key_id"), str) \
            or not isinstance(sig.get("signature"), str):
        raise _fail(d, f"{SIGNATURE} must be an object with string 'key_id' and 'signature'")
    if sig.get("algorithm", "ed25519") != "ed25519":
        raise _fail(d, f"unsupported signature algorithm {sig.get('algorithm')!r} (expected 'ed25519')")
    by_id = {key_id(k): k for k in trusted}
    key = by_id.get(sig["key_id"])
    if key is None:
        raise _fail(d, f"signed by unknown key {sig['key_id']} (trusted: {', '.join(sorted(by_id)) or 'none'})")
    try:
        key.verify(base64.b64decode(sig["signature"], validate=True), body)
    except (InvalidSignature, binascii.Error, ValueError):
        raise _fail(d, f"bad signature (key {sig['key_id']}): {MANIFEST} was changed after signing") from None
    return sig["key_id"]


def _check_path(d: Path, rel) -> None:
    if not isinstance(rel, str) or not rel:
        raise _fail(d, f"file name {rel!r} is not a non-empty string")
    pp = PurePosixPath(rel)
    if pp.is_absolute() or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise _fail(d, f"absolute path {rel!r} in {MANIFEST}")
    if "\\" in rel or any(part in ("..", ".", "") for part in rel.split("/")):
        raise _fail(d, f"path {rel!r} leaves the directory or is not normalised")
    if rel in _RESERVED:
        raise _fail(d, f"{MANIFEST} lists its own file {rel!r}")


def check_files(d: Path, files) -> None:
    """Every entry of ``files`` well-formed, present, the same size and sha256, and nothing unlisted."""
    if not isinstance(files, dict):
        raise _fail(d, f"'files' is a {type(files).__name__}, expected an object")
    if not files:
        raise _fail(d, "the file list is empty")
    for rel, want in files.items():
        _check_path(d, rel)
        if not isinstance(want, dict) or not isinstance(want.get("sha256"), str) \
                or not _HEX64.fullmatch(want["sha256"]) or type(want.get("bytes")) is not int:
            raise _fail(d, f"entry for {rel!r} must be {{'sha256': 64 hex digits, 'bytes': integer}}")
    present = {}
    for rel, st in _walk(d):
        if stat.S_ISLNK(st.st_mode):
            raise _fail(d, f"{rel} is a symlink")
        if stat.S_ISREG(st.st_mode):
            present[rel] = st
        elif not stat.S_ISDIR(st.st_mode):
            raise _fail(d, f"{rel} is not a regular file")
    extra = sorted(set(present) - set(files) - _RESERVED
                   - ({MARKER} if MARKER in present and present[MARKER].st_size == 0 else set()))
    if extra:
        raise _fail(d, f"unlisted file {extra[0]!r} (not in {MANIFEST})")
    for rel, want in sorted(files.items()):
        st = present.get(rel)
        if st is None:
            raise _fail(d, f"{rel} is missing (listed in {MANIFEST})")
        if st.st_size != want["bytes"]:
            raise _fail(d, f"{rel} does not match {MANIFEST} ({st.st_size} bytes, recorded {want['bytes']})")
        got = sha256_file(d / rel)
        if got != want["sha256"]:
            raise _fail(d, f"{rel} does not match {MANIFEST} (sha256 {got[:12]}… ≠ recorded {want['sha256'][:12]}…)")


def verify_directory(directory: str | os.PathLike,
                     trusted_keys: Iterable[Ed25519PublicKey] | str | os.PathLike) -> dict:
    """The verified manifest of ``directory``, or :class:`VerificationError` naming the reason.

    ``trusted_keys``: public keys, or path(s) to ``.pub`` files / key directories.
    The result carries ``"_key_id"``: the id of the key that signed it.
    """
    d = Path(directory)
    if d.is_symlink() or not d.is_dir():
        raise _fail(d, "not a directory (or a symlink to one)")
    if isinstance(trusted_keys, (str, os.PathLike)):
        trusted = load_public_keys(trusted_keys)
    else:
        trusted = [k if isinstance(k, Ed25519PublicKey) else load_public_keys(k)[0] for k in trusted_keys]
    if not trusted:
        raise _fail(d, "no trusted key given")
    body, manifest = _read_json(d, MANIFEST)
    kid = _check_signature(d, body, trusted)
    if not isinstance(manifest, dict):
        raise _fail(d, f"{MANIFEST} is a {type(manifest).__name__}, expected an object")
    if manifest.get("format") != FORMAT:
        raise _fail(d, f"manifest format {manifest.get('format')!r}, expected {FORMAT}")
    check_files(d, manifest.get("files"))
    return {**manifest, "_key_id": kid}
