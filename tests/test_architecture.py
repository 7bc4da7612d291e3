"""The architecture as import contracts (pyproject.toml, [tool.importlinter]), checked by
import-linter: no package imports from a layer above it, no import cycles inside a package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> list[str]:
    script = Path(sys.executable).parent / "lint-imports"
    if script.exists():
        return [str(script)]
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is missing: install the test extra (requirements-test.lock)")
    return [found]


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    """lint-imports on the tree under ``root`` (its src/ first on the path, not an installed copy)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([*_lint_imports(), "--no-cache", "--no-logo", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = _run(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path):
    # The same layers over a copy of the tree with one upward import added: the check must fail,
    # naming it (so the test above cannot pass by checking nothing).
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "edgedeploy", src / "edgedeploy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (src / "edgedeploy" / "errors.py").write_text(
        (src / "edgedeploy" / "errors.py").read_text() + "\n\ndef _upward():\n    from edgedeploy import cli\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = _run(tmp_path, "--contract", "layers")
    assert result.returncode == 1, result.stdout[-4000:]
    assert "edgedeploy.errors -> edgedeploy.cli" in result.stdout
