"""The deployment directory: the model, the resolved config, and a manifest that proves both.

Layout::

    DIR/model.onnx            (or model.pdmodel + model.pdiparams)
    DIR/deployment.yaml       the resolved config: the chosen engine, precision, threads, batch; units canonical
    DIR/manifest.json         sha256 and size of every other file, engine versions, machine,
                              the measurements behind the choice and the target checks

The directory is built beside ``DIR`` and renamed into place, so a crash never leaves half a
deployment. :func:`verify` re-hashes every file before anything runs and names the first that
no longer matches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from edgedeploy.errors import UserError
from edgedeploy.util import sha256_file

MANIFEST = "manifest.json"
CONFIG = "deployment.yaml"


sha256 = sha256_file  # one implementation, in edgedeploy.util


def engine_versions() -> dict[str, str]:
    """Installed engine SDK versions (read from package metadata: nothing is imported)."""
    from importlib import metadata

    from edgedeploy import engines

    dists = {"onnxruntime": "onnxruntime", "openvino": "openvino", "paddle": "paddlepaddle"}
    out = {}
    for e in engines.ENGINES:
        try:
            out[e] = metadata.version(dists.get(e, e))
        except metadata.PackageNotFoundError:
            out[e] = "not installed"
    return out


def write(out_dir: str | Path, *, model, resolved: dict, record: dict, plan=None) -> Path:
    """Write the deployment into ``out_dir`` atomically (replacing an existing deployment there).

    ``model``: the :class:`~edgedeploy.ingest.Model` to ship (its files are copied).
    ``resolved``: the resolved config. ``record``: measurements and checks for the manifest.
    ``plan``: the chosen :class:`~edgedeploy.plan.DeploymentPlan`, recorded as ``"plan"`` with its model
    file pointing at the copy (relative name and sha256).
    """
    from edgedeploy import __version__

    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise UserError(f"{out} exists and is not a deployment directory (no {MANIFEST}); choose an empty or new "
                        "directory with -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        names = []
        for src in model.files():
            dst = tmp / f"model{src.suffix}"
            shutil.copyfile(src, dst)
            names.append(dst.name)
        if plan is not None:
            shipped = dataclasses.replace(plan.model, path=names[0], params=names[1] if len(names) > 1 else None,
                                          sha256=sha256(tmp / names[0]))
            record = {**record, "plan": plan.with_model(shipped).to_dict()}
        resolved = dict(resolved)
        resolved["model"] = names[0]
        if len(names) > 1:
            resolved["params"] = names[1]
        (tmp / CONFIG).write_text("# written by edgedeploy deploy: the configuration chosen by measuring\n"
                                  + yaml.safe_dump(resolved, sort_keys=False))
        files = {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir())}
        manifest = {
            "format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "edgedeploy": __version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "engines": engine_versions(),
            "source_model": {"name": model.name, "path": str(model.path)}, "files": files, **record,
        }
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read(directory: str | Path) -> dict:
    d = Path(directory)
    path = d / MANIFEST
    if not path.exists():
        raise UserError(f"{d} is not a deployment directory: no {MANIFEST} (make one with `edgedeploy deploy CONFIG -o {d}`)")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); the deployment is damaged: deploy again") from None


def verify(directory: str | Path) -> dict:
    """The manifest, once every file it lists exists with its recorded sha256; else :class:`UserError`
    naming the first file that does not match (a deployment that fails this must not run)."""
    d = Path(directory)
    manifest = read(d)
    for name, want in manifest.get("files", {}).items():
        p = d / name
        if not p.exists():
            raise UserError(f"deployment {d}: {name} is missing (listed in {MANIFEST}); refusing to run it — deploy again")
        got = sha256(p)
        if got != want["sha256"]:
            raise UserError(f"deployment {d}: {name} does not match {MANIFEST} (sha256 {got[:12]}… ≠ recorded "
                            f"{want['sha256'][:12]}…); refusing to run a modified deployment — deploy again")
    return manifest
