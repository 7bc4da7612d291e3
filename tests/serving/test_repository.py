"""The model repository: layout, configs, sha256 checks, immutability, paths that escape, units."""

from __future__ import annotations

import os

import pytest

from edgedeploy.errors import UserError
from edgedeploy.serving import Repository
from edgedeploy.serving.repository import ModelNotFound, file_sha256


def test_lists_models_and_versions_and_reads_configs(repo):
    r = Repository(repo)
    (repo / "tiny" / "3").mkdir()  # versions need not be contiguous; empty dirs are still listed
    (repo / "tiny" / "notaversion").mkdir()
    (repo / ".ab").mkdir()
    assert r.names() == ["other", "tiny"]
    assert r.versions("tiny") == [1, 3]
    mv = r.version("tiny", 1)
    assert mv.model_file.name == "model.onnx" and mv.config.warmup == {"input": "1x3x8x8"}
    assert mv.config.instances == 1 and mv.config.memory_optimization and len(mv.digest) == 64


def test_model_level_config_gives_defaults(repo):
    (repo / "tiny" / "config.yaml").write_text("instances: 3\nload_order: 2\n")
    cfg = Repository(repo).version("tiny", 1).config
    assert (cfg.instances, cfg.load_order, cfg.warmup) == (3, 2, {"input": "1x3x8x8"})


def test_unknown_config_key_gets_a_suggestion(repo):
    (repo / "tiny" / "1" / "config.yaml").write_text("instance: 2\n")
    with pytest.raises(UserError, match=r"unknown setting 'instance' \(did you mean 'instances'\?\)"):
        Repository(repo).version("tiny", 1)


def test_bad_config_value_says_which_setting(repo):
    (repo / "tiny" / "1" / "config.yaml").write_text("instances: 0\n")
    with pytest.raises(UserError, match="setting instances: .*given 0"):
        Repository(repo).version("tiny", 1)


def test_unknown_model_and_version(repo):
    r = Repository(repo)
    with pytest.raises(ModelNotFound, match=r"unknown model 'tinny' \(did you mean 'tiny'\?\)"):
        r.version("tinny")
    with pytest.raises(ModelNotFound, match=r"has no version 7; it has \[1\]"):
        r.version("tiny", 7)


@pytest.mark.parametrize("name", ["..", "../tiny", "a/b", "..hidden", "", "/etc"])
def test_names_that_escape_the_root_are_refused(repo, name):
    with pytest.raises(UserError, match="is not allowed"):
        Repository(repo).version(name)


def test_symlink_out_of_the_repository_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    (outside / "1").mkdir(parents=True)
    os.symlink(outside, repo / "sneaky")
    with pytest.raises(UserError, match="resolves outside the repository"):
        Repository(repo).versions("sneaky")


def test_config_model_path_may_not_escape(repo):
    (repo / "tiny" / "1" / "config.yaml").write_text("model: ../../other/1/model.onnx\n")
    with pytest.raises(UserError, match="points outside the version directory"):
        Repository(repo).version("tiny", 1)


def test_sha256sums_are_checked(repo):
    d = repo / "tiny" / "1"
    (d / "SHA256SUMS").write_text(f"{file_sha256(d / 'model.onnx')}  model.onnx\n")
    Repository(repo).version("tiny", 1)
    (d / "SHA256SUMS").write_text(f"{'0' * 64}  model.onnx\n")
    with pytest.raises(UserError, match="does not match SHA256SUMS"):
        Repository(repo).version("tiny", 1)


def test_versions_are_immutable_once_loaded(repo):
    r = Repository(repo)
    r.version("tiny", 1)
    with open(repo / "tiny" / "1" / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(UserError, match="changed on disk after it was loaded; versions are immutable"):
        r.version("tiny", 1)


def test_add_version_numbers_the_next_one_and_copies_the_config(repo):
    r = Repository(repo)
    v = r.add_version("tiny", {"model.onnx": (repo / "tiny" / "1" / "model.onnx").read_bytes()}, config_from=1)
    assert v == 2 and r.versions("tiny") == [1, 2]
    assert (repo / "tiny" / "2" / "config.yaml").read_text() == (repo / "tiny" / "1" / "config.yaml").read_text()
    assert not [p for p in (repo / "tiny").iterdir() if p.name.startswith(".upload")]
    with pytest.raises(UserError, match="is not allowed"):
        r.add_version("tiny", {"../evil.onnx": b"x"})
