"""Rollouts as records in the controller's store: create one from a plan (validate, select the
devices, pack + sign + publish the artifact), change its state (start, pause, resume, abort), and
read its status. The CLI and the dashboard call these; the running controller acts on what they write.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.fleet import artifacts
from edgedeploy.fleet.plan import RolloutPlan, load_plan
from edgedeploy.fleet.store import Store

FAILED = ("failed", "refused", "rolled_back")
DESIRED_LIFETIME_S = 30 * 86400


def signing_key(directory: Path):
    """The controller's Ed25519 key (``DIR/keys/edgedeploy.key``), made on first use."""
    from edgedeploy.security.keys import generate_keypair, load_private_key

    path = directory / "keys" / "edgedeploy.key"
    if not path.exists():
        generate_keypair(path.parent)
    return load_private_key(path)


def create_rollout(store: Store, plan_path: Path, *, state_dir: Path, key) -> dict:
    """Validate the plan, select its devices, pack + sign + publish the artifact, record the rollout."""
    plan, base = load_plan(plan_path)
    if store.tx("SELECT 1 FROM rollouts WHERE name=?", plan.name):
        raise UserError(f"a rollout named {plan.name!r} exists; give the plan another name")
    devices = [d for d in store.devices() if plan.target.matches(d)]
    if not devices:
        seen = store.devices()
        raise UserError(f"plan {plan_path}: target {plan.target.model_dump(exclude_defaults=True) or 'all'} matches none of "
                        f"the {len(seen)} devices seen ({', '.join(d['device'] for d in seen[:8]) or 'none yet'}); "
                        "check group/labels/hardware, or start the agents and the controller first")
    golden = (base / Path(plan.golden).expanduser()) if plan.golden else None
    config = None
    if plan.config is not None:
        import yaml

        from edgedeploy.serving.repository import make_config

        make_config(plan.config, plan_path)  # the same checks the devices will make
        config = yaml.safe_dump(plan.config)
    art = artifacts.pack(base / Path(plan.artifact).expanduser(), model=plan.model, version=plan.version, out_dir=state_dir / "artifacts",
                         key=key, golden=golden, config=config)
    store.publish(plan.model, plan.version, art.sha256, art.size, art.path.name)
    targets = sorted(d["device"] for d in devices)
    now = time.time()
    store.tx("INSERT INTO rollouts (name, plan, state, created, updated) VALUES (?, ?, 'created', ?, ?)",
             plan.name, json.dumps({"plan": plan.model_dump(), "targets": targets,
                                    "artifact": {"file": art.path.name, "sha256": art.sha256, "size": art.size}}), now, now)
    store.event(plan.name, None, f"created: {plan.model} v{plan.version} to {len(targets)} devices, {len(plan.stages)} stages")
    return {"rollout": plan.name, "model": plan.model, "version": plan.version, "targets": targets,
            "stages": [s.reach(len(targets)) for s in plan.stages], "sha256": art.sha256, "bytes": art.size}


def control(store: Store, name: str, action: str, *, rollback: bool = False) -> dict:
    """start | pause | resume | abort: a state change the running controller acts on."""
    r = store.rollout(name)
    allowed = {"start": ("created",), "pause": ("running",), "resume": ("paused",),
               # an emergency stop; with rollback also after the fact: every device goes back to its previous slot
               "abort": ("created", "running", "paused") + (("done", "halted") if rollback else ())}
    if r["state"] not in allowed[action]:
        raise UserError(f"rollout {name} is {r['state']}; {action} needs it {' or '.join(allowed[action])}")
    if action == "start":
        store.set_state(name, "running", stage=0)
    elif action == "pause":
        store.set_state(name, "paused", "paused by the operator")
    elif action == "resume":
        store.set_state(name, "running")
    else:
        store.set_state(name, "aborting", "rollback" if rollback else "")
    return status(store, name)


def status(store: Store, name: str) -> dict:
    """The rollout, its stages (devices, passed, failed, pending) and every device's gate figures."""
    r = store.rollout(name)
    plan, targets = r["plan"]["plan"], r["plan"]["targets"]
    rows = store.assignments(name)
    stages = []
    for i, s in enumerate(RolloutPlan(**plan).stages):
        mine = [a for a in rows if a["stage"] == i]
        ab = store.tx("SELECT value FROM meta WHERE key=?", f"ab:{name}:{i}")
        stages.append({"stage": i + 1, "name": s.name or f"stage {i + 1}", "reach": s.reach(len(targets)),
                       "ab": json.loads(ab[0]["value"]) if ab else None,
                       "devices": len(mine), "serving": sum(a["status"] == "serving" for a in mine),
                       "failed": sum(a["status"] in FAILED for a in mine),
                       "pending": sum(a["status"] == "pending" for a in mine)})
    return {"rollout": name, "state": r["state"], "reason": r["reason"], "stage": r["stage"] + 1,
            "model": plan["model"], "version": plan["version"], "targets": len(targets), "stages": stages,
            "devices": [{"device": a["device"], "stage": a["stage"] + 1, "status": a["status"], "from": a["from_version"],
                         "to": a["to_version"], "figures": a["detail"].get("figures", {}),
                         "reason": a["detail"].get("reason", "")} for a in rows],
            "events": [{"t": e["t"], "device": e["device"], "text": e["text"]} for e in reversed(store.events(name, 50))]}
