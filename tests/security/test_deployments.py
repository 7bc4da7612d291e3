"""Signed deployments: `keys` commands, `deployment verify/run --trusted-key`, and every forged
manifest refused with its reason (the attacks from issue 14)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from edgedeploy.cli import main
from edgedeploy.deploy import manifest
from edgedeploy.deploy.runtime import open_deployment
from edgedeploy.ingest import load_model
from edgedeploy.security import keys
from edgedeploy.security.signing import VerificationError
from edgedeploy.util import sha256_file


@pytest.fixture
def keydir(tmp_path):
    assert main(["keys", "generate", str(tmp_path / "keys")]) == 0
    return tmp_path / "keys"


@pytest.fixture
def signed(tmp_path, tiny_onnx, keydir):
    out = manifest.write(tmp_path / "dep", model=load_model(tiny_onnx), resolved={"model": "x"},
                         record={"chosen": {"latency_ms": {"p50": 1.0, "p99": float("nan")}}},
                         signing_key=keys.load_private_key(keydir / "edgedeploy.key"))
    return out


def _edit_manifest(d, fn):
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def _entry(path):
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _outside_model(d):
    """The issue's attack: deployment.yaml points outside, the manifest lists the outside model and /etc/hostname."""
    outside = d.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(d / "model.onnx", outside / "other.onnx")
    cfg = yaml.safe_load((d / "deployment.yaml").read_text())
    cfg["model"] = "../../outside/other.onnx"
    (d / "deployment.yaml").write_text(yaml.safe_dump(cfg))
    _edit_manifest(d, lambda m: m["files"].update({
        "deployment.yaml": _entry(d / "deployment.yaml"), "../../outside/other.onnx": _entry(outside / "other.onnx"),
        "/etc/hostname": _entry(__import__("pathlib").Path("/etc/hostname"))}))


def _config_names_unlisted(d):
    cfg = yaml.safe_load((d / "deployment.yaml").read_text())
    cfg["model"] = "other.onnx"
    (d / "deployment.yaml").write_text(yaml.safe_dump(cfg))
    _edit_manifest(d, lambda m: m["files"].update({"deployment.yaml": _entry(d / "deployment.yaml")}))


FORGED = {  # forgery → (reason without a trusted key, reason with one)
    "empty list": (lambda d: _edit_manifest(d, lambda m: m.update(files={})), "file list is empty", "bad signature"),
    "extra file": (lambda d: (d / "evil.so").write_bytes(b"\x7fELF"), "unlisted file 'evil.so'", "unlisted file"),
    "symlink": (lambda d: os.symlink("/etc/hostname", d / "hostname"), "hostname is a symlink", "is a symlink"),
    "outside model": (_outside_model, "leaves the directory", "bad signature"),
    "config names an unlisted model": (_config_names_unlisted, "names model 'other.onnx'", "bad signature"),
    "tampered model": (lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:-1] + b"\0"),
                       "model.onnx does not match manifest.json", "model.onnx does not match"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_deployments_are_refused_naming_the_reason(case, signed, keydir):
    make, unsigned_reason, signed_reason = FORGED[case]
    make(signed)
    with pytest.raises(VerificationError, match=unsigned_reason):
        manifest.verify(signed)
    with pytest.raises(VerificationError, match=signed_reason):
        manifest.verify(signed, keys.load_public_keys(keydir / "edgedeploy.pub"))
    with pytest.raises(VerificationError, match=signed_reason):  # `deployment run` refuses before it loads anything
        open_deployment(signed, trusted_keys=keys.load_public_keys(keydir))
    assert main(["deployment", "verify", str(signed), "--trusted-key", str(keydir / "edgedeploy.pub")]) == 2


def test_bad_signature_and_unknown_key(signed, keydir, tmp_path):
    assert main(["keys", "generate", str(tmp_path / "other")]) == 0
    assert main(["deployment", "verify", str(signed), "--trusted-key", str(tmp_path / "other")]) == 2
    with pytest.raises(VerificationError, match="unknown key"):
        manifest.verify(signed, keys.load_public_keys(tmp_path / "other"))
    sig = json.loads((signed / "manifest.sig").read_text())
    sig["signature"] = sig["signature"][:-4] + ("AAA=" if not sig["signature"].endswith("AAA=") else "BBB=")
    (signed / "manifest.sig").write_text(json.dumps(sig))
    with pytest.raises(VerificationError, match="bad signature"):
        manifest.verify(signed, keys.load_public_keys(keydir))


def test_a_signed_deployment_verifies_elsewhere_with_only_the_public_key(signed, keydir, tmp_path, capsys):
    other = tmp_path / "other-machine"
    shutil.copytree(signed, other / "dep")
    shutil.copy(keydir / "edgedeploy.pub", other / "trusted.pub")
    assert main(["deployment", "verify", str(other / "dep"), "--trusted-key", str(other / "trusted.pub"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["key_id"] == keys.key_id(keys.load_public_keys(other / "trusted.pub")[0])
    assert json.loads((signed / "manifest.json").read_text())["chosen"]["latency_ms"]["p99"] is None  # strict JSON


def test_keys_list_rotate_and_sign(tmp_path, tiny_onnx, keydir, capsys):
    out = manifest.write(tmp_path / "dep", model=load_model(tiny_onnx), resolved={"model": "x"}, record={"a": 1})
    capsys.readouterr()
    assert main(["keys", "sign", str(out), "--key", str(keydir / "edgedeploy.key")]) == 0  # sign after deploying
    assert manifest.verify(out, keys.load_public_keys(keydir))["a"] == 1  # the record kept
    capsys.readouterr()
    assert main(["keys", "rotate", str(keydir), "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert main(["keys", "list", str(keydir), "--json"]) == 0
    assert {k["key_id"] for k in json.loads(capsys.readouterr().out)} == {rotated["old_key_id"], rotated["new_key_id"]}
    manifest.verify(out, keys.load_public_keys(keydir))  # the retired public key is still trusted
    with pytest.raises(VerificationError, match="unknown key"):
        manifest.verify(out, keys.load_public_keys(keydir / "edgedeploy.pub"))
    assert main(["keys", "generate", str(keydir)]) == 2  # never overwrites a key
