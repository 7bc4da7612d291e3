"""Remote measurement: ``edgedeploy fleet bench MODEL --on DEVICE|GROUP`` sends a signed job to the
agents; each runs ``edgedeploy bench``'s own machinery (a fresh process per configuration) on the
version it serves and answers with the same rows, which come back marked with the device.
A user's own boxes become the device farm that ``estimate`` otherwise stands in for.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import fields
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.fleet.messages import PREFIX, Job, device_topic, seal
from edgedeploy.fleet.transport import BrokerAddress, Link


def measure(server, job: Job, *, device: str, threads: int | None) -> dict:
    """On the device: bench the version of ``job.model`` that ``server`` serves; the rows as dicts."""
    from edgedeploy.benchmarking import plan, run_bench

    version = server.serving.table().get(job.model)
    if version is None:
        raise UserError(f"{device} does not serve {job.model!r} (it serves {', '.join(server.serving.table()) or 'nothing'})")
    mv = server.repo.version(job.model, version, verify=False)
    engine = job.engine or ("onnxruntime" if mv.config.engine == "auto" else mv.config.engine)
    warmup = mv.config.warmup or {}
    shapes = list(warmup.values()) if len(warmup) == 1 else []  # the served input size, where the config gives it
    configs, skipped = plan([str(mv.model_file)], engine_names=[engine], anchors=False, shapes=shapes,
                            threads=[threads], runs=job.runs, time_budget_s=job.time_budget_s)
    return {"version": version, "results": [r.to_dict() for r in run_bench(configs)],
            "skipped": [x.to_dict() for x in skipped], "reason": ""}


def result_from_dict(d: dict):
    """A BenchResult again, from the dict a device sent (for the same table as ``bench``)."""
    from edgedeploy.benchmarking.config import BenchConfig
    from edgedeploy.benchmarking.runner import BenchResult

    names = {f.name for f in fields(BenchResult)} - {"config"}
    return BenchResult(config=BenchConfig.from_dict(d["config"]), **{k: v for k, v in d.items() if k in names})


def remote_bench(state_dir: Path, broker: BrokerAddress, model: str, on: str, *, runs: int = 20,
                 engine: str | None = None, time_budget_s: float = 10.0, timeout_s: float = 300.0) -> list[dict]:
    """Ask the devices named by ``on`` (a device id or a group) to measure ``model``; one answer per
    device: ``{"device", "version", "results": [BenchResult], "reason"}`` (reason: why there is no row)."""
    from edgedeploy.fleet.rollouts import signing_key
    from edgedeploy.fleet.store import Store

    store = Store(state_dir / "fleet.db")
    known = store.devices()
    targets = sorted(d["device"] for d in known if on in (d["device"], d.get("group")) and d.get("online", True))
    if not targets:
        groups = sorted({d.get("group", "") for d in known})
        raise UserError(f"--on {on!r} names no online device or group; devices: "
                        f"{', '.join(d['device'] for d in known[:10]) or 'none'}; groups: {', '.join(groups) or 'none'}")
    job = Job(id=uuid.uuid4().hex[:12], model=model, runs=runs, engine=engine, time_budget_s=time_budget_s,
              expires=time.time() + timeout_s)
    answers: dict[str, dict] = {}
    all_in = threading.Event()

    def on_result(topic: str, raw: bytes) -> None:
        msg = json.loads(raw)
        if msg.get("job") == job.id and msg.get("device") in targets:
            answers[msg["device"]] = msg
            if len(answers) == len(targets):
                all_in.set()

    link = Link(broker, f"edgedeploy-bench-{job.id}")
    link.subscribe(f"{PREFIX}/devices/+/results", on_result)
    link.open()
    try:
        payload = seal("job", job.to_dict(), signing_key(state_dir))
        for device in targets:
            link.publish(device_topic(device, "jobs"), payload)
        all_in.wait(timeout_s)
    finally:
        link.close()
    out = []
    for device in targets:
        a = answers.get(device)
        if a is None:
            out.append({"device": device, "version": None, "results": [], "reason": f"no answer in {timeout_s:g} s"})
        else:
            out.append({"device": device, "version": a.get("version"), "reason": a.get("reason", ""),
                        "results": [result_from_dict(r) for r in a.get("results", [])]})
    return out
