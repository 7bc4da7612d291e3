"""Signed directories: ``manifest.json`` lists every file with its sha256 and size, ``manifest.sig``
is the Ed25519 signature of ``manifest.json``'s bytes with the signer's key id.

    >>> sign_directory("deploy/lcnet", load_private_key("keys/edgedeploy.key"))
    >>> verify_directory("deploy/lcnet", load_public_keys("keys/"))   # the manifest, or VerificationError
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgedeploy.errors import UserError
from edgedeploy.security.keys import key_id
from edgedeploy.util import atomic_write, sha256_file

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"


class VerificationError(UserError):
    """A signed directory that does not verify: the message names the reason."""


def _files(directory: Path) -> list[Path]:
    top = {directory / MANIFEST, directory / SIGNATURE}
    return sorted(p for p in directory.rglob("*") if p.is_file() and p not in top)


def sign_directory(directory: str | os.PathLike, private_key: Ed25519PrivateKey, *, extra: dict | None = None) -> Path:
    """List every file of ``directory`` (sha256, size) in ``manifest.json`` and sign it; returns the manifest path."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"{directory} is not a directory; expected the directory to sign")
    files = {str(p.relative_to(d)): {"sha256": sha256_file(p), "size": p.stat().st_size} for p in _files(d)}
    manifest = {"files": files, **({"extra": extra} if extra else {})}
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with atomic_write(d / MANIFEST) as f:
        f.write(body)
    sig = {"key_id": key_id(private_key.public_key()), "signature": base64.b64encode(private_key.sign(body)).decode()}
    with atomic_write(d / SIGNATURE, "w") as f:
        json.dump(sig, f)
    return d / MANIFEST


def verify_directory(directory: str | os.PathLike, trusted_keys: list[Ed25519PublicKey]) -> dict:
    """Check the signature of ``manifest.json`` against ``trusted_keys`` and every file against it
    (no file missing, changed or added); returns the manifest."""
    d = Path(directory)
    try:
        body, sig = (d / MANIFEST).read_bytes(), json.loads((d / SIGNATURE).read_text())
        signature, kid = base64.b64decode(sig["signature"]), sig["key_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"{d}: not signed ({MANIFEST} and {SIGNATURE} expected: {exc})") from None
    key = next((k for k in trusted_keys if key_id(k) == kid), None)
    if key is None:
        raise VerificationError(f"{d}: signed by key {kid}, which is not trusted "
                                f"(trusted: {', '.join(key_id(k) for k in trusted_keys) or 'none'})")
    try:
        key.verify(signature, body)
    except InvalidSignature:
        raise VerificationError(f"{d}: the signature of {MANIFEST} does not verify with key {kid}; "
                                "the manifest was changed after signing") from None
    manifest = json.loads(body)
    listed = manifest.get("files", {})
    present = {str(p.relative_to(d)) for p in _files(d)}
    for extra in sorted(present - set(listed)):
        raise VerificationError(f"{d}: file {extra!r} is not in the signed manifest")
    for name, meta in listed.items():
        f = d / name
        if not f.resolve().is_relative_to(d.resolve()):
            raise VerificationError(f"{d}: manifest entry {name!r} points outside the directory")
        if not f.is_file():
            raise VerificationError(f"{d}: {name!r} is listed in the manifest but missing")
        if f.stat().st_size != meta["size"] or sha256_file(f) != meta["sha256"]:
            raise VerificationError(f"{d}: {name!r} does not match its signed sha256; the file was changed")
    return manifest
