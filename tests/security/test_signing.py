"""Signed directories: a valid one verifies with only the public key; every forgery is refused by name."""

from __future__ import annotations

import json
import os

import pytest

from edgedeploy.errors import UserError
from edgedeploy.security import keys, signing
from edgedeploy.security.signing import VerificationError


@pytest.fixture
def keypair(tmp_path):
    priv, pub = keys.generate_keypair(tmp_path / "keys")
    return keys.load_private_key(priv), pub


@pytest.fixture
def signed(tmp_path, keypair):
    d = tmp_path / "art"
    (d / "sub").mkdir(parents=True)
    (d / "model.onnx").write_bytes(b"\x08\x07model")
    (d / "sub" / "labels.txt").write_text("cat\ndog\n")
    signing.sign_directory(d, keypair[0], extra={"name": "demo"})
    return d


def _resign_manifest(d, priv, mutate):
    """Change manifest.json and sign it again: a forgery by someone who holds the key is out of
    scope, but it isolates each file-level check from the signature check."""
    m = json.loads((d / "manifest.json").read_text())
    mutate(m)
    body = signing.canonical(m)
    (d / "manifest.json").write_bytes(body)
    sig = json.loads((d / "manifest.sig").read_text())
    import base64
    sig["signature"] = base64.b64encode(priv.sign(body)).decode()
    (d / "manifest.sig").write_text(json.dumps(sig))


def test_key_files_and_modes(tmp_path):
    priv, pub = keys.generate_keypair(tmp_path, "k")
    assert priv.stat().st_mode & 0o777 == 0o600
    assert priv.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    k = keys.load_public_keys(tmp_path)
    assert len(k) == 1 and len(keys.key_id(k[0])) == 16
    assert keys.key_id(keys.load_private_key(priv).public_key()) == keys.key_id(k[0])
    with pytest.raises(UserError, match="already exists"):
        keys.generate_keypair(tmp_path, "k")
    priv.chmod(0o644)
    with pytest.raises(UserError, match="readable by other users"):
        keys.load_private_key(priv)


def test_valid_directory_verifies_with_public_key_only(signed, keypair, tmp_path):
    import shutil
    elsewhere = tmp_path / "other-machine"
    shutil.copytree(signed, elsewhere / "art")
    shutil.copy(keypair[1], elsewhere / "trusted.pub")
    m = signing.verify_directory(elsewhere / "art", elsewhere / "trusted.pub")
    assert set(m["files"]) == {"model.onnx", "sub/labels.txt"} and m["name"] == "demo"
    assert m["_key_id"] == keys.key_id(keys.load_public_keys(keypair[1])[0])


def test_rotation_keeps_old_public_trusted(tmp_path, signed, keypair):
    kdir = keypair[1].parent
    info = keys.rotate(kdir)
    assert info["old_key_id"] != info["new_key_id"]
    assert not (kdir / "edgedeploy.key").read_bytes() == b""
    signing.verify_directory(signed, kdir)           # old signature still trusted via retired .pub
    with pytest.raises(VerificationError, match="unknown key"):
        signing.verify_directory(signed, kdir / "edgedeploy.pub")
    assert {k["key_id"] for k in keys.list_keys(kdir)} == {info["old_key_id"], info["new_key_id"]}


def _symlink(d):
    os.symlink("/etc/hostname", d / "link")


def _symlink_listed(d):
    (d / "model.onnx").unlink()
    os.symlink("/etc/hostname", d / "model.onnx")


FORGERIES = {
    "bad signature": lambda d, priv: (d / "manifest.json").write_bytes(
        (d / "manifest.json").read_bytes().replace(b'"demo"', b'"evil"')),
    "missing": lambda d, priv: (d / "manifest.sig").unlink(),
    "extra file": lambda d, priv: (d / "evil.py").write_text("import os"),
    "symlink": lambda d, priv: _symlink(d),
    "symlink listed": lambda d, priv: _symlink_listed(d),
    "tampered": lambda d, priv: (d / "model.onnx").write_bytes(b"\x08\x07evil!"),
    "truncated": lambda d, priv: (d / "model.onnx").write_bytes(b"\x08"),
    "deleted": lambda d, priv: (d / "sub" / "labels.txt").unlink(),
    "empty list": lambda d, priv: _resign_manifest(d, priv, lambda m: m.update(files={})),
    "files not object": lambda d, priv: _resign_manifest(d, priv, lambda m: m.update(files=[])),
    "bytes as string": lambda d, priv: _resign_manifest(
        d, priv, lambda m: m["files"]["model.onnx"].update(bytes="7")),
    "absolute path": lambda d, priv: _resign_manifest(
        d, priv, lambda m: m["files"].update({"/etc/hostname": m["files"]["model.onnx"]})),
    "outside path": lambda d, priv: _resign_manifest(
        d, priv, lambda m: m["files"].update({"../../outside/other.onnx": m["files"]["model.onnx"]})),
}
REASONS = {
    "bad signature": "bad signature", "missing": "manifest.sig is missing", "extra file": "unlisted file 'evil.py'",
    "symlink": "link is a symlink", "symlink listed": "model.onnx is a symlink", "tampered": "model.onnx does not match manifest.json \\(sha256",
    "truncated": r"model.onnx does not match manifest.json \(1 bytes", "deleted": "sub/labels.txt is missing", "empty list": "file list is empty",
    "files not object": "expected an object", "bytes as string": "integer", "absolute path": "absolute path",
    "outside path": "leaves the directory",
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_forgery_refused_naming_reason(case, signed, keypair):
    priv = keypair[0]
    FORGERIES[case](signed, priv)
    with pytest.raises(VerificationError, match=REASONS[case]):
        signing.verify_directory(signed, [keypair[1]])


def test_unknown_key_refused(signed, tmp_path):
    _, other = keys.generate_keypair(tmp_path / "other")
    with pytest.raises(VerificationError, match="unknown key"):
        signing.verify_directory(signed, other)


def test_signing_refuses_symlink(tmp_path, keypair):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_text("x")
    os.symlink("/etc/hostname", d / "b")
    with pytest.raises(UserError, match="symlink"):
        signing.sign_directory(d, keypair[0])


def test_the_repository_marker_is_allowed_only_empty(signed, keypair):
    (signed / "READY").touch()  # the model repository's "copy complete" marker, added after signing
    assert signing.verify_directory(signed, [keypair[1]])["name"] == "demo"
    (signed / "READY").write_text("payload")
    with pytest.raises(VerificationError, match="unlisted file 'READY'"):
        signing.verify_directory(signed, [keypair[1]])
