"""The deployment directory: the model, the resolved config, and a manifest that proves both.

Layout::

    DIR/model.onnx            (or model.pdmodel + model.pdiparams)
    DIR/deployment.yaml       the resolved config: the chosen engine, precision, threads, batch; units canonical
    DIR/manifest.json         sha256 and size of every other file, engine versions, machine,
                              the measurements behind the choice and the target checks
    DIR/manifest.sig          the Ed25519 signature over manifest.json (when signed: ``signing_key``,
                              or ``edgedeploy keys sign DIR`` afterwards)

The directory is built beside ``DIR`` and renamed into place, so a crash never leaves half a
deployment. :func:`verify` checks the signature against the trusted keys (when given), then
re-hashes every file before anything runs, refuses any file the manifest does not list, any
symlink, and a ``deployment.yaml`` whose model or params is not one of the listed files (a
``model: ../../outside.onnx``), naming the reason. The manifest format and its checks are
:mod:`edgedeploy.security.signing`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from edgedeploy.errors import UserError
from edgedeploy.fsio import match_umask, sweep_partials
from edgedeploy.util import sha256_file

log = logging.getLogger(__name__)

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


def _strict(obj):
    """The record with NaN/Infinity as null: the manifest is strict JSON (it is signed and parsed strictly)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strict(v) for v in obj]
    return obj


def write(out_dir: str | Path, *, model, resolved: dict, record: dict, plan=None,
          signing_key=None, before_sign: Callable[[Path], dict | None] | None = None) -> Path:
    """Write the deployment into ``out_dir`` atomically (replacing an existing deployment there).

    ``model``: the :class:`~edgedeploy.ingest.Model` to ship (its files are copied).
    ``resolved``: the resolved config. ``record``: measurements and checks for the manifest.
    ``plan``: the chosen :class:`~edgedeploy.plan.DeploymentPlan`, recorded as ``"plan"`` with its model
    file pointing at the copy (relative name and sha256).
    ``signing_key``: an Ed25519 private key (``edgedeploy.security.keys.load_private_key``) that signs it.
    ``before_sign``: called with the half-built directory once the model and config are in it, to add
    files that ship with the deployment (a target's artefacts); what it returns joins the manifest's
    record. Everything it writes is listed and signed like the model.
    """
    from edgedeploy.security import signing

    from edgedeploy import __version__

    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise UserError(f"{out} exists and is not a deployment directory (no {MANIFEST}); choose an empty or new "
                        "directory with -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(out.parent, out.name)  # what a killed deploy left
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.{os.getpid()}.", suffix=".part"))
    match_umask(tmp)
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
        if before_sign is not None:
            record = {**record, **(before_sign(tmp) or {})}
        meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "edgedeploy": __version__,
                "python": sys.version.split()[0], "platform": platform.platform(), "engines": engine_versions(),
                "source_model": {"name": model.name, "path": str(model.path)},
                **_strict(json.loads(json.dumps(record, default=str)))}
        if signing_key is not None:
            signing.sign_directory(tmp, signing_key, extra=meta)
        else:
            with open(tmp / MANIFEST, "wb") as f:
                f.write(signing.canonical({**meta, "format": signing.FORMAT, "files": signing.list_files(tmp)}))
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


def verify(directory: str | Path, trusted_keys=None) -> dict:
    """The manifest, once the deployment is proven intact; else a :class:`UserError` naming why.

    ``trusted_keys``: public keys or ``.pub`` paths (``edgedeploy.security.keys.load_public_keys``).
    Given, the manifest must carry a valid signature by one of them. Not given, the files are
    still checked against the manifest (integrity, not authenticity) and a warning says so.
    """
    from edgedeploy.security import signing

    d = Path(directory)
    if trusted_keys is not None:
        manifest = signing.verify_directory(d, trusted_keys)
    else:
        manifest = read(d)
        if not isinstance(manifest, dict):
            raise signing.VerificationError(f"{d}: {MANIFEST} is not a JSON object; deploy again")
        signing.check_files(d, manifest.get("files"))
        log.warning("deployment %s: files match its manifest, but no trusted key was given, so who made it is not "
                    "checked (pass trusted_keys / --trusted-key)", d)
    _check_config_paths(d, manifest["files"])
    return manifest


def _check_config_paths(d: Path, files: dict) -> None:
    """deployment.yaml's ``model`` and ``params`` must name files of this deployment, listed in the manifest."""
    cfg_path = d / CONFIG
    if not cfg_path.is_file():
        return
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{cfg_path} is not valid YAML ({str(exc).splitlines()[0]}); deploy again") from None
    for key in ("model", "params"):
        value = cfg.get(key) if isinstance(cfg, dict) else None
        if value is not None and value not in files:
            from edgedeploy.security.signing import VerificationError

            raise VerificationError(f"deployment {d}: {CONFIG} names {key} {value!r}, which is not a file of the "
                                    f"deployment listed in {MANIFEST}; refusing to run it — deploy again")
