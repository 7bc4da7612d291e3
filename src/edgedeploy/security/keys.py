"""Ed25519 signing keys: generate, load, identify, rotate.

Layout of a key directory (``edgedeploy keys generate DIR``)::

    DIR/NAME.key    the private key, PEM (PKCS#8, unencrypted), mode 0600: keep it on the build machine
    DIR/NAME.pub    the public key, PEM (SubjectPublicKeyInfo): copy it to every machine that verifies

A key is named by its *key id*, the first 16 hex digits of the sha256 of its 32 raw public
bytes; signatures carry it so a verifier with several trusted keys (during a rotation) knows
which one to try.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgedeploy.errors import UserError

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
KEY_ID_HEX = 16


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's id: sha256 of the raw 32-byte public key, first 16 hex digits."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.part")
    # O_EXCL + 0600 from the start: the key is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_public(path: Path, key: Ed25519PublicKey) -> None:
    from edgedeploy.util import atomic_write

    with atomic_write(path) as f:
        f.write(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    path.chmod(0o644)


def generate_keypair(directory: str | os.PathLike, name: str = "edgedeploy") -> tuple[Path, Path]:
    """Make a new Ed25519 key pair ``directory/name.key`` (0600) and ``directory/name.pub``.

    Refuses to overwrite an existing key (use :func:`rotate`). Returns (private_path, public_path).
    """
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"key name {name!r} is not a plain file name; give a name such as 'edgedeploy'")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    priv, pub = d / f"{name}{PRIVATE_SUFFIX}", d / f"{name}{PUBLIC_SUFFIX}"
    for p in (priv, pub):
        if p.exists():
            raise UserError(f"{p} already exists; refusing to overwrite a key (rotate it with `keys rotate`, "
                            "or choose another name)")
    key = Ed25519PrivateKey.generate()
    _write_private(priv, key)
    _write_public(pub, key.public_key())
    return priv, pub


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``; refused if others can read the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"private key {p} does not exist; make one with `edgedeploy keys generate DIR`")
    if os.name == "posix" and p.stat().st_mode & 0o077:
        raise UserError(f"private key {p} is readable by other users (mode {p.stat().st_mode & 0o777:o}); "
                        f"expected 600: run `chmod 600 {p}`")
    return _load_pem(p, lambda data: serialization.load_pem_private_key(data, password=None), Ed25519PrivateKey,
                     "an unencrypted PEM private key", "a file")


def _load_public(p: Path) -> Ed25519PublicKey:
    return _load_pem(p, serialization.load_pem_public_key, Ed25519PublicKey, "a PEM public key", "a .pub file")


def _load_pem(p: Path, load, kind: type, what: str, made: str):
    """The key of type ``kind`` that ``load`` reads from PEM file ``p``, or one UserError line saying why not."""
    try:
        key = load(p.read_bytes())
    except (ValueError, TypeError) as exc:
        raise UserError(f"{p} is not {what} ({exc}); expected {made} made by `edgedeploy keys generate`") from None
    if not isinstance(key, kind):
        raise UserError(f"{p} holds a {type(key).__name__}, expected an Ed25519 key ({what})")
    return key


def load_public_keys(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Ed25519PublicKey]:
    """Trusted public keys from PEM files and/or directories (every ``*.pub`` inside).

    Refuses an empty result: verifying against no key would accept nothing, silently.
    """
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else list(paths_or_dir)
    keys: list[Ed25519PublicKey] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            keys += [_load_public(f) for f in sorted(p.glob(f"*{PUBLIC_SUFFIX}"))]
        elif p.is_file():
            keys.append(_load_public(p))
        else:
            raise UserError(f"trusted key {p} does not exist; give a .pub file or a directory of them")
    if not keys:
        raise UserError(f"no public keys (*{PUBLIC_SUFFIX}) found in {', '.join(map(str, items)) or 'nothing'}; "
                        "give the .pub file made by `edgedeploy keys generate`")
    return keys


def list_keys(directory: str | os.PathLike) -> list[dict]:
    """Every key pair or public key in ``directory``: name, key id, whether the private half is there."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"key directory {d} does not exist; make one with `edgedeploy keys generate {d}`")
    return [{"name": pub.stem, "key_id": key_id(_load_public(pub)), "public": str(pub),
             "private": (pub.with_suffix(PRIVATE_SUFFIX)).exists()}
            for pub in sorted(d.glob(f"*{PUBLIC_SUFFIX}"))]


def rotate(directory: str | os.PathLike, name: str = "edgedeploy", *, keep_old_public: bool = True) -> dict:
    """Replace key ``name`` by a new one; the old pair is renamed ``name-<old key id>``.

    With ``keep_old_public`` the old public key stays in the directory (still trusted by verifiers
    that load the directory, so artefacts signed before the rotation verify until re-signed);
    its private half is deleted either way, so nothing new can be signed with it.
    """
    d = Path(directory)
    priv, pub = d / f"{name}{PRIVATE_SUFFIX}", d / f"{name}{PUBLIC_SUFFIX}"
    if not pub.exists():
        raise UserError(f"no key {name!r} in {d} to rotate ({pub} missing); make one with `keys generate`")
    old_id = key_id(_load_public(pub))
    retired = d / f"{name}-{old_id}{PUBLIC_SUFFIX}"
    if keep_old_public:
        os.replace(pub, retired)
    else:
        pub.unlink()
    if priv.exists():
        priv.unlink()
    new_priv, new_pub = generate_keypair(d, name)
    return {"old_key_id": old_id, "new_key_id": key_id(_load_public(new_pub)), "private": str(new_priv),
            "public": str(new_pub), "retired_public": str(retired) if keep_old_public else None,
            "rotated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
