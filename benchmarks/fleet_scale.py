"""The fleet at port scale on one machine: a real mosquitto, the controller (its own process) and
55 agents (11 processes of 5, each agent with its own serving runtime, slots and identity) serving
PP-LCNet orientation (the zoo's ONNX) to a steady load of 1 inference/s each.

    .venv/bin/python benchmarks/fleet_scale.py              # ~5-10 minutes on 2 cores
    .venv/bin/python benchmarks/fleet_scale.py --agents 20  # smaller (4 processes of 5)

Scenarios, in order:
1. baseline: v1 installed on every device from nothing (one stage, 100%).
2. good rollout v2: canary 1 -> 25% -> 100% (success (N-5)/N: 90% for 55, gates: golden input, p99, RSS, error rate
   after a 2 s soak), with faults: 5 devices offline for the whole rollout (they converge when back),
   the broker killed and restarted when stage 2 starts, 5 devices (download limited to 1 MB/s)
   killed mid-download and restarted (they resume with Range requests), the controller killed
   (SIGKILL) and restarted when stage 3 starts. Every device ends on v2; failed inferences counted.
3. bad model v3 (the classifier's bias shifted: accuracy collapsed, golden input off): halted at the
   canary and rolled back; no device outside the canary is asked; time from start to halt.
4. tampered artifact v4 (one bit flipped after signing) and wrongly signed v5 (a rogue key):
   refused by every device.
Writes benchmarks/results/fleet.md and fleet.json. Loopback only; everything bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
PER_PROCESS = 5
STARTED: list[subprocess.Popen] = []  # every process this run starts (hosts, controllers, the broker)
LIMIT_S = 15 * 60
# 55 devices check their gates at once on 2 shared cores: p99 of PP-LCNet there reaches seconds
# (measured up to 2.4 s under other users' load), so the latency gate is set for that contention;
# the bad model is caught by its golden input, not by latency.
P99_LIMIT = "10s"


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


# -- the agent host: several agents in one process -----------------------------------------------------
def host(ids: list[str], state: Path, broker_port: int, trust: Path, max_rate: float | None) -> None:
    from edgedeploy.fleet.agent import Agent, AgentSettings
    from edgedeploy.fleet.transport import BrokerAddress

    agents = [Agent(AgentSettings(device_id=i, broker=BrokerAddress(port=broker_port), state_dir=state / i,
                                  trusted_keys=(str(trust),), group="port", labels={"quay": "north"},
                                  heartbeat_s=2.0, load_hz=1.0, max_rate=max_rate, threads=1)).start() for i in ids]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    for a in agents:
        a.stop()


class Proc:
    """A child process of this run, its output in ``log``; killed with the run whatever happens."""

    def __init__(self, args: list[str], log: Path):
        self.args, self.log, self.proc = args, log, None

    def start(self):
        self.proc = subprocess.Popen(self.args, env=_env(), stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        return self

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def agent_host(ids, state, broker_port, trust, max_rate=None) -> Proc:
    return Proc([sys.executable, __file__, "--host", ",".join(ids), "--state", str(state), "--broker-port", str(broker_port),
                 "--trust", str(trust)] + (["--max-rate", str(max_rate)] if max_rate else []), state / f"host-{ids[0]}.log")


def controller(state, broker_port, http_port) -> Proc:
    return Proc([sys.executable, "-c", "import sys; from edgedeploy.cli import main; sys.exit(main(sys.argv[1:]))",
                 "fleet", "controller", "--dir", str(state), "--broker", f"127.0.0.1:{broker_port}",
                 "--http-port", str(http_port), "--json"], state.parent / "controller.log")


def wait_for(predicate, timeout, what):
    from edgedeploy.fleet.broker import wait_for as poll

    try:
        return poll(predicate, timeout, what, 0.25)
    except TimeoutError as exc:
        raise SystemExit(f"fleet_scale: {exc}") from None


def bad_model(src: Path, dst: Path) -> Path:
    """The classifier with its last bias shifted: loads and runs, answers are wrong."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    b = next(i for i in m.graph.initializer if i.name.startswith("linear_0.b_0"))
    b.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(b) + np.float32([0, 3, 6, 9]), b.name))
    onnx.save(m, str(dst))
    return dst


def golden(model: Path, out: Path) -> Path:
    import numpy as np
    import onnxruntime as ort

    from edgedeploy.fleet.artifacts import write_golden

    x = {"x": np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)}
    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return write_golden(out, x, dict(zip([o.name for o in s.get_outputs()], s.run(None, x))))


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


# -- the run -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=55)
    ap.add_argument("--host"), ap.add_argument("--state"), ap.add_argument("--broker-port", type=int)
    ap.add_argument("--trust"), ap.add_argument("--max-rate", type=float)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    if args.host:
        return host(args.host.split(","), Path(args.state), args.broker_port, Path(args.trust), args.max_rate)
    if args.agents < 20 or args.agents % PER_PROCESS:
        raise SystemExit(f"--agents {args.agents}: expected a multiple of {PER_PROCESS}, at least 20")
    try:
        run(args)
    finally:  # whatever happened, nothing this run started outlives it
        for p in STARTED:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def run(args) -> None:
    import yaml

    from edgedeploy.fleet.broker import LocalBroker, free_port
    from edgedeploy.fleet.rollouts import control, status
    from edgedeploy.fleet.store import Store
    from edgedeploy.security.keys import generate_keypair, load_private_key
    from edgedeploy.security.signing import sign_directory
    from edgedeploy.zoo.fetch import fetch

    t_start = time.monotonic()
    work = ROOT / "out" / "fleet_scale"
    shutil.rmtree(work, ignore_errors=True)
    (work / "agents").mkdir(parents=True)
    ctl_dir = work / "ctl"
    lcnet = fetch("pplcnet-orientation").paths["model"]
    shutil.copy2(lcnet, work / "lcnet.onnx")
    golden(work / "lcnet.onnx", work / "golden.npz")
    bad_model(work / "lcnet.onnx", work / "lcnet_bad.onnx")

    broker = LocalBroker(work / "broker").start()
    STARTED.append(broker.proc)
    http_port = free_port()
    ctl = controller(ctl_dir, broker.port, http_port).start()
    wait_for(lambda: (ctl_dir / "keys" / "edgedeploy.pub").is_file() and (ctl_dir / "fleet.db").is_file(), 60, "the controller")
    store = Store(ctl_dir / "fleet.db")
    trust = ctl_dir / "keys" / "edgedeploy.pub"

    n = args.agents
    ids = [f"dev{i:02d}" for i in range(n)]
    fragile, offline = ids[1:6], ids[-5:]  # fragile: in stage 2 (25%), killed mid-download; offline: in stage 3
    hosts = [agent_host(fragile, work / "agents", broker.port, trust, max_rate=1_000_000)]
    rest = [i for i in ids if i not in fragile and i not in offline]
    hosts += [agent_host(rest[k:k + PER_PROCESS], work / "agents", broker.port, trust) for k in range(0, len(rest), PER_PROCESS)]
    offline_host = agent_host(offline, work / "agents", broker.port, trust)
    t0 = time.monotonic()
    for h in [*hosts, offline_host]:
        h.start()
    wait_for(lambda: sum(d.get("online", True) for d in store.devices()) == n, 300, f"{n} agents to report")
    startup_s = time.monotonic() - t0
    print(f"{n} agents up in {startup_s:.1f} s", flush=True)

    success = f"{100 * (n - len(offline)) // n}%"  # the offline devices may not hold a stage up

    def serving() -> dict:
        return {d["device"]: (d.get("serving") or {}).get("lcnet") for d in store.devices()}

    def plan(name, version, artifact, stages, start=True, **kw):
        p = work / f"{name}.yaml"
        p.write_text(yaml.safe_dump({"name": name, "model": "lcnet", "version": version, "artifact": artifact,
                                     "golden": "golden.npz", "config": {"warmup": {"x": "1x3x224x224"}, "memory_optimization": False},
                                     "target": {"group": "port"}, "stages": stages,
                                     "gates": {"golden_max_diff": 1e-4, "p99_ms": P99_LIMIT, "rss_mb": "4GB", "error_rate": 0.0},
                                     "soak": "2s", "thresholds": {"success": success, "errors": 1}, **kw}))
        out = subprocess.run([sys.executable, "-c", "import sys; from edgedeploy.cli import main; sys.exit(main(sys.argv[1:]))",
                              "fleet", "rollout", "create", str(p), "--dir", str(ctl_dir), "--json", *(["--start"] if start else [])],
                             env=_env(), capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"rollout create {name}: {out.stderr.strip()}")
        return time.time()

    def finished(name, timeout):
        wait_for(lambda: store.rollout(name)["state"] not in ("running", "created", "aborting"), timeout, f"rollout {name}")
        return status(store, name)

    results: dict = {"agents": n, "processes": len(hosts) + 1, "startup_s": startup_s,
                     "artifact_bytes": (work / "lcnet.onnx").stat().st_size}

    # 1. baseline
    t = plan("v1", 1, "lcnet.onnx", [{"percent": 100}])
    st = finished("v1", 600)
    if st["state"] != "done":
        raise SystemExit(f"fleet_scale: baseline rollout {st['state']}: {st['reason']}")
    results["baseline_s"] = time.time() - t
    print(f"baseline v1 on {n} devices in {results['baseline_s']:.1f} s", flush=True)

    # 2. good rollout with faults
    offline_host.stop()
    wait_for(lambda: sum(not d.get("online", True) for d in store.devices()) == 5, 60, "5 devices to go offline")
    bytes_before = {d["device"]: d.get("bytes_downloaded", 0) for d in store.devices()}
    served_before = sum((d.get("health") or {}).get("served_total", 0) for d in store.devices())
    t_good = plan("v2", 2, "lcnet.onnx", [{"name": "canary", "devices": 1}, {"name": "quarter", "percent": 25},
                                         {"name": "all", "percent": 100}])
    faults = {}
    wait_for(lambda: store.rollout("v2")["stage"] >= 1, 300, "stage 2")
    broker.stop()
    faults["broker_down_at_s"] = time.time() - t_good
    time.sleep(2)
    broker.start()
    STARTED.append(broker.proc)
    parts = lambda: [p for i in fragile for p in (work / "agents" / i / "downloads").glob("*.part") if p.stat().st_size > 1_000_000]  # noqa: E731
    wait_for(lambda: len(parts()) >= 3, 120, "fragile devices to be mid-download")
    faults["killed_mid_download"] = {p.parent.parent.name: p.stat().st_size for p in parts()}
    hosts[0].kill()
    time.sleep(1)
    hosts[0].start()
    wait_for(lambda: store.rollout("v2")["stage"] >= 2 or store.rollout("v2")["state"] != "running", 400, "stage 3")
    ctl.kill()
    faults["controller_killed_at_s"] = time.time() - t_good
    time.sleep(1)
    ctl = controller(ctl_dir, broker.port, http_port).start()
    st = finished("v2", 600)
    good_s = time.time() - t_good
    if st["state"] != "done":
        raise SystemExit(f"fleet_scale: rollout v2 {st['state']}: {st['reason']}")
    online = [i for i in ids if i not in offline]
    wait_for(lambda: all(serving().get(i) == 2 for i in online), 60, "every online device on v2")
    t_back = time.time()
    offline_host.start()
    wait_for(lambda: all(serving().get(i) == 2 for i in offline), 300, "the offline devices to converge")
    devices = store.devices()
    events = store.events("v2", 10_000)
    stage_t = {e["text"]: e["t"] for e in events if e["device"] is None}
    starts = sorted(t for text, t in stage_t.items() if text.startswith("running (stage"))
    done_t = next(t for text, t in stage_t.items() if text.startswith("done"))
    served_twice = [d for d in online if sum(e["text"] == "serving v2" and e["device"] == d for e in events) > 1]
    results["good"] = {
        "state": st["state"], "total_s": good_s, "stage_s": [b - a for a, b in zip(starts, [*starts[1:], done_t])],
        "offline_converged_s": time.time() - t_back, "faults": faults,
        "failed_inferences": sum((d.get("health") or {}).get("failed_total", 0) for d in devices),
        "inferences": sum((d.get("health") or {}).get("served_total", 0) for d in devices) - served_before,
        "bytes": sum(d.get("bytes_downloaded", 0) - bytes_before.get(d["device"], 0) for d in devices),
        "fragile_bytes": {i: next(d for d in devices if d["device"] == i).get("bytes_downloaded", 0) - bytes_before[i]
                          for i in fragile},
        "served_twice": served_twice, "all_on_v2": all(serving().get(i) == 2 for i in ids)}
    print(f"good rollout v2: {good_s:.1f} s, stages {[round(s, 1) for s in results['good']['stage_s']]}", flush=True)

    # 3. bad model
    t_bad = plan("v3", 3, "lcnet_bad.onnx", [{"name": "canary", "devices": 1}, {"percent": 100}], on_failure="rollback_stage")
    st = finished("v3", 300)
    halt_t = next(e["t"] for e in store.events("v3") if e["text"].startswith(("rolled_back", "halted")))
    results["bad"] = {"state": st["state"], "halt_s": halt_t - t_bad, "asked": [d["device"] for d in st["devices"]],
                      "reason": st["devices"][0]["reason"] if st["devices"] else "",
                      "serving_v3": [d for d, v in serving().items() if v == 3]}
    print(f"bad model v3: {st['state']} in {results['bad']['halt_s']:.1f} s", flush=True)

    # 4. tampered and wrongly signed
    for name, version, how in (("v4", 4, "tampered"), ("v5", 5, "wrongly signed")):
        if how == "tampered":
            t_att = plan(name, version, "lcnet.onnx", [{"percent": 100}], start=False, thresholds={"errors": n}, on_failure="halt")
        else:
            rel = work / "release"
            rel.mkdir()
            shutil.copy2(work / "lcnet.onnx", rel / "model.onnx")
            (rel / "config.yaml").write_text("warmup: {x: 1x3x224x224}\n")
            rogue, _ = generate_keypair(work / "rogue")
            sign_directory(rel, load_private_key(rogue), extra={"model": "lcnet", "version": version})
            t_att = plan(name, version, "release", [{"percent": 100}], gates={}, thresholds={"errors": n}, on_failure="halt")
        if how == "tampered":  # after publishing, before any download: flip a bit in the stored artifact
            art = ctl_dir / "artifacts" / store.rollout(name)["plan"]["artifact"]["file"]
            data = bytearray(art.read_bytes())
            data[len(data) // 2] ^= 1
            art.write_bytes(bytes(data))
            control(store, name, "start")
        st = finished(name, 300)
        results[how] = {"state": st["state"], "refused": sum(d["status"] == "refused" for d in st["devices"]),
                        "asked": len(st["devices"]), "s": time.time() - t_att,
                        "reason": st["devices"][0]["reason"] if st["devices"] else ""}
        print(f"{how} v{version}: {results[how]['refused']} of {results[how]['asked']} refused", flush=True)
    assert all(v == 2 for v in serving().values()), serving()

    results["artifact_tar_bytes"] = store.published("lcnet", 2)["size"]
    results["rss_mb"] = {"controller": rss_mb(ctl.proc.pid),
                         "agent_process_of_5": [rss_mb(h.proc.pid) for h in [*hosts, offline_host]]}
    results["total_s"] = time.monotonic() - t_start
    for h in [*hosts, offline_host]:
        h.stop()
    ctl.proc.terminate()
    ctl.proc.wait(30)
    broker.stop()
    write(results, Path(args.out), n)
    if results["total_s"] > LIMIT_S:
        raise SystemExit(f"fleet_scale: took {results['total_s']:.0f} s, over the {LIMIT_S} s limit")


def write(r: dict, out: Path, n: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps(r, indent=1))
    g, b = r["good"], r["bad"]
    procs = r["rss_mb"]["agent_process_of_5"]
    md = f"""# Fleet at scale: {n} agents, one machine

Made by `.venv/bin/python benchmarks/fleet_scale.py --agents {n}` ({time.strftime('%Y-%m-%d')}; 2-core VM, shared).
{n} agents in {r['processes']} processes of 5 (each agent: its own serving runtime, slots, identity, MQTT session),
PP-LCNet x1_0 orientation (ONNX, {r['artifact_bytes'] / 1e6:.1f} MB), 1 inference/s per agent; mosquitto 2 on loopback
(no persistence: a restart loses retained messages); controller in its own process. Total run: {r['total_s']:.0f} s.

| scenario | result |
|---|---|
| start-up | {n} agents reporting in {r['startup_s']:.1f} s |
| baseline v1 from nothing, 1 stage | {r['baseline_s']:.1f} s |
| good rollout v2, canary 1 → 25% → 100% | **{g['state']}** in {g['total_s']:.1f} s; stages {', '.join(f'{s:.1f} s' for s in g['stage_s'])} |
| failed inferences during v2 (all devices) | **{g['failed_inferences']}** of {g['inferences']} served |
| devices that applied v2 twice | {len(g['served_twice'])} |
| every device on v2 at the end | {g['all_on_v2']} |
| broker killed (stage 2 start) | at {g['faults']['broker_down_at_s']:.1f} s, restarted 2 s later |
| 5 devices killed mid-download (1 MB/s) | on disk when killed: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in g['faults']['killed_mid_download'].items())}; fetched after the restart: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in g['fragile_bytes'].items())} (the artifact: {r['artifact_tar_bytes'] / 1e6:.1f} MB, model + golden input + config; the rest came with a Range request) |
| controller killed (SIGKILL) at stage 3 | at {g['faults']['controller_killed_at_s']:.1f} s; restarted, resumed |
| 5 devices offline for the whole rollout | converged {g['offline_converged_s']:.1f} s after coming back |
| bytes downloaded for v2 | {g['bytes'] / 1e6:.0f} MB |
| bad model v3 (bias shifted) | **{b['state']}** {b['halt_s']:.1f} s after start; asked: {', '.join(b['asked'])}; serving v3: {len(b['serving_v3'])}; reason: {b['reason'][:90]} |
| tampered artifact v4 | **{r['tampered']['refused']} of {r['tampered']['asked']}** refused ({r['tampered']['reason'].split(': ', 1)[-1][:110]}) |
| wrongly signed v5 | **{r['wrongly signed']['refused']} of {r['wrongly signed']['asked']}** refused ({r['wrongly signed']['reason'].split('verification failed: ', 1)[-1].split(';')[0]}) |
| RSS | controller {r['rss_mb']['controller']:.0f} MB; agent process of 5: {min(procs):.0f}-{max(procs):.0f} MB |
"""
    (out / "fleet.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
