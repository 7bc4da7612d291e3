"""Ed25519 key pairs in PEM files: make them, load them, and name a public key by a short id."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgedeploy.errors import UserError
from edgedeploy.util import atomic_write


def generate_keypair(directory: str | os.PathLike, name: str = "edgedeploy") -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` in ``directory``; refuses to overwrite."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = d / f"{name}.key", d / f"{name}.pub"
    if priv_path.exists():
        raise UserError(f"{priv_path} exists; refusing to overwrite a private key (remove it first or choose another name)")
    key = Ed25519PrivateKey.generate()
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with atomic_write(pub_path) as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (unencrypted)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"private key {path}: cannot read it ({exc}); expected an unencrypted Ed25519 PEM key "
                        "as written by generate_keypair") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"private key {path}: a {type(key).__name__}, expected Ed25519")
    return key


def load_public_keys(paths_or_dir) -> list[Ed25519PublicKey]:
    """Ed25519 public keys from PEM files, or from every ``*.pub`` in a directory."""
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else list(paths_or_dir)
    files: list[Path] = []
    for p in map(Path, items):
        files.extend(sorted(p.glob("*.pub")) if p.is_dir() else [p])
    keys = []
    for f in files:
        try:
            key = serialization.load_pem_public_key(f.read_bytes())
        except (OSError, ValueError) as exc:
            raise UserError(f"public key {f}: cannot read it ({exc}); expected an Ed25519 PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UserError(f"public key {f}: a {type(key).__name__}, expected Ed25519")
        keys.append(key)
    if not keys:
        raise UserError(f"no public keys in {paths_or_dir}; expected .pub files (PEM, Ed25519)")
    return keys


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the sha256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
