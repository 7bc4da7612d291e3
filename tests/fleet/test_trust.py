"""End-to-end trust: signed desired states (replay, expiry, wrong key) and artifacts (resumed
download over real HTTP with Range, tampered bytes, wrong signer, unsafe archive)."""

from __future__ import annotations

import io
import tarfile
import time
from types import SimpleNamespace

import pytest

from edgedeploy.fleet import artifacts
from edgedeploy.fleet.dashboard import start_http
from edgedeploy.fleet.messages import Desired, Job, MessageRefused, open_desired, open_job, seal, sign_desired
from edgedeploy.security.keys import generate_keypair, load_private_key, load_public_keys
from tests.fleet.conftest import golden_for, tiny_model


@pytest.fixture
def keys(tmp_path):
    priv, pub = generate_keypair(tmp_path / "keys")
    rogue, _ = generate_keypair(tmp_path / "rogue")
    return load_private_key(priv), load_public_keys(pub), load_private_key(rogue)


def test_desired_state_signature_sequence_and_expiry(keys):
    key, trusted, rogue = keys
    d = Desired(seq=5, model="m", version=2, expires=time.time() + 60)
    assert open_desired(sign_desired(d, key), trusted, last_seq=4) == d
    with pytest.raises(MessageRefused, match="not above the last accepted"):
        open_desired(sign_desired(d, key), trusted, last_seq=5)  # a replayed (older) state: rollback attack
    with pytest.raises(MessageRefused, match="expired"):
        open_desired(sign_desired(Desired(seq=6, model="m", version=2, expires=time.time() - 1), key), trusted, last_seq=0)
    with pytest.raises(MessageRefused, match="not trust"):
        open_desired(sign_desired(d, rogue), trusted, last_seq=0)
    forged = sign_desired(d, key).replace(b'"version": 2', b'"version": 3')
    with pytest.raises(MessageRefused, match="does not verify"):
        open_desired(forged, trusted, last_seq=0)


def test_jobs_are_signed_once_only_and_expire(keys):
    key, trusted, rogue = keys
    job = Job(id="j1", model="m", expires=time.time() + 60)
    assert open_job(seal("job", job.to_dict(), key), trusted, done=set()) == job
    with pytest.raises(MessageRefused, match="replayed"):
        open_job(seal("job", job.to_dict(), key), trusted, done={"j1"})
    with pytest.raises(MessageRefused, match="not trust"):
        open_job(seal("job", job.to_dict(), rogue), trusted, done=set())
    with pytest.raises(MessageRefused, match="expired"):
        open_job(seal("job", Job(id="j2", model="m", expires=time.time() - 1).to_dict(), key), trusted, done=set())


@pytest.fixture
def store(tmp_path):
    """The controller's artifact store over real HTTP (uvicorn on loopback)."""
    (tmp_path / "ctl" / "artifacts").mkdir(parents=True)
    server, port = start_http(SimpleNamespace(dir=tmp_path / "ctl", store=None, token=None), "127.0.0.1", 0)
    yield tmp_path / "ctl" / "artifacts", f"http://127.0.0.1:{port}/artifacts"
    server.should_exit = True


def _packed(tmp_path, out, key, **kw):
    model = tiny_model(tmp_path / "m.onnx")
    return artifacts.pack(model, model="tiny", version=3, out_dir=out, key=key, golden=golden_for(model, tmp_path / "g.npz"), **kw)


def test_download_resumes_and_verifies(tmp_path, store, keys):
    key, trusted, _ = keys
    out, url = store
    art = _packed(tmp_path, out, key)
    part = tmp_path / "dev" / f"{art.sha256}.tar.part"
    part.parent.mkdir()
    part.write_bytes(art.path.read_bytes()[: art.size // 2])  # a download cut off half way
    path, got = artifacts.download(f"{url}/{art.path.name}", part, sha256=art.sha256, size=art.size)
    assert got == art.size - art.size // 2  # only the rest came over the wire (HTTP 206)
    manifest = artifacts.unpack_verified(path, tmp_path / "dev" / "x", trusted)
    assert (manifest["model"], manifest["version"]) == ("tiny", 3) and "golden.npz" in manifest["files"]


def test_tampered_artifact_is_refused_before_unpacking(tmp_path, store, keys):
    key, _, _ = keys
    out, url = store
    art = _packed(tmp_path, out, key)
    data = bytearray(art.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.path.write_bytes(bytes(data))
    part = tmp_path / "dev" / "a.tar.part"
    with pytest.raises(artifacts.ArtifactRefused, match=r"refused \(tampered or corrupt\), nothing unpacked"):
        artifacts.download(f"{url}/{art.path.name}", part, sha256=art.sha256, size=art.size)
    assert not part.exists() and not part.with_suffix("").exists()


def test_wrongly_signed_artifact_is_refused(tmp_path, store, keys):
    _, trusted, rogue = keys
    out, url = store
    art = _packed(tmp_path, out, rogue)
    path, _ = artifacts.download(f"{url}/{art.path.name}", tmp_path / "dev" / "a.tar.part", sha256=art.sha256)
    with pytest.raises(artifacts.ArtifactRefused, match="signed by unknown key"):
        artifacts.unpack_verified(path, tmp_path / "dev" / "x", trusted)
    assert not (tmp_path / "dev" / "x").exists()


def test_archive_escaping_its_directory_is_refused(tmp_path, keys):
    _, trusted, _ = keys
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(artifacts.ArtifactRefused):
        artifacts.unpack_verified(bad, tmp_path / "dev" / "x", trusted)
    assert not (tmp_path / "dev" / "escape.txt").exists()
