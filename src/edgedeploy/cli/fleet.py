"""`edgedeploy agent` and `edgedeploy fleet controller|devices|rollout ...`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from edgedeploy.cli.output import console, emit_json, fmt_bytes, fmt_ms, table
from edgedeploy.errors import UserError

fleet_app = typer.Typer(help="Staged model rollouts to a fleet of devices over an MQTT broker.", no_args_is_help=True)
rollout_app = typer.Typer(help="Create and drive rollouts (the running controller carries them out).", no_args_is_help=True)
fleet_app.add_typer(rollout_app, name="rollout")

DIR = typer.Option(Path("fleet"), "--dir", help="The controller's state: fleet.db, artifacts/, keys/.")
BROKER = typer.Option("127.0.0.1:1883", "--broker", help="MQTT 5 broker, HOST[:PORT] (mqtts://HOST:PORT for TLS).")
JSON = typer.Option(False, "--json", help="Print JSON.")


def _address(broker: str, username: str | None, password: str | None, ca: Path | None):
    from edgedeploy.fleet.transport import BrokerAddress

    return BrokerAddress.parse(broker, username=username, password=password, tls_ca=str(ca) if ca else None)


def _wait_for_signal() -> None:
    done = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: done.set())
    done.wait()


def agent(device_id: str = typer.Option(..., "--id", help="This device's id (a topic level: letters, digits, _ . -)."),
          state_dir: Path = typer.Option(..., "--dir", help="State: the model slots, downloads, last sequence."),
          trust: list[Path] = typer.Option(..., "--trust", help="Public key file or directory to trust (repeatable)."),
          broker: str = BROKER,
          username: str = typer.Option(None, "--username", help="Broker user name."),
          password: str = typer.Option(None, "--password", envvar="EDGEDEPLOY_MQTT_PASSWORD", help="Broker password."),
          ca: Path = typer.Option(None, "--ca", help="CA file: connect with TLS and check the broker's certificate."),
          group: str = typer.Option("default", "--group", help="The device's group."),
          label: list[str] = typer.Option([], "--label", help="KEY=VALUE label (repeatable)."),
          heartbeat: float = typer.Option(5.0, "--heartbeat", min=0.1, help="Seconds between state reports."),
          load_hz: float = typer.Option(0.0, "--load-hz", min=0, help="Steady self-load on each served model, inferences/s."),
          max_rate: str = typer.Option(None, "--max-rate", help="Download limit per second, e.g. 2MB."),
          port: int = typer.Option(None, "--port", help="Also serve the models over HTTP (KServe v2) on 127.0.0.1:PORT."),
          json_: bool = JSON):
    """Run one device of the fleet: report, follow the signed desired state, swap, check, roll back."""
    from edgedeploy.fleet.agent import Agent, AgentSettings
    from edgedeploy.units import parse_bytes

    labels = {}
    for item in label:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UserError(f"--label {item!r}: expected KEY=VALUE")
        labels[k] = v
    settings = AgentSettings(device_id=device_id, broker=_address(broker, username, password, ca), state_dir=state_dir,
                             trusted_keys=tuple(map(str, trust)), group=group, labels=labels, heartbeat_s=heartbeat,
                             load_hz=load_hz, max_rate=parse_bytes(max_rate, field="--max-rate") if max_rate else None,
                             serve_port=port)
    a = Agent(settings).start()
    if json_:
        emit_json({"device": device_id, "broker": str(settings.broker), "serving": a.server.serving.table()})
    else:
        console.print(f"agent {device_id}: connected to {settings.broker}; serving {a.server.serving.table() or 'nothing yet'}")
    try:
        _wait_for_signal()
    finally:
        a.stop()


@fleet_app.command("controller")
def controller(state_dir: Path = DIR, broker: str = BROKER,
               username: str = typer.Option(None, "--username"), password: str = typer.Option(None, "--password",
                                                                                        envvar="EDGEDEPLOY_MQTT_PASSWORD"),
               ca: Path = typer.Option(None, "--ca", help="CA file for TLS to the broker."),
               http_host: str = typer.Option("127.0.0.1", "--http-host", help="Address of the artifact store and dashboard."),
               http_port: int = typer.Option(8900, "--http-port", min=0, max=65535, help="Its port (0: any free one)."),
               artifact_url: str = typer.Option(None, "--artifact-url", help="Base URL devices download from "
                                                "(default: this controller), e.g. a static server holding DIR/artifacts."),
               token: str = typer.Option(None, "--token", envvar="EDGEDEPLOY_FLEET_TOKEN",
                                         help="Bearer token for changes through the dashboard API (none: read-only)."),
               json_: bool = JSON):
    """Run the controller: drive rollouts, serve artifacts and the dashboard, until Ctrl-C."""
    from edgedeploy.fleet.controller import Controller

    c = Controller(state_dir, _address(broker, username, password, ca), http_host=http_host, http_port=http_port,
                   artifact_url=artifact_url, token=token).start()
    info = {"dashboard": f"http://{http_host}:{c.http_port}/", "artifacts": c.artifact_url, "broker": str(c.broker),
            "public_key": str(state_dir / "keys" / "edgedeploy.pub")}
    emit_json(info) if json_ else console.print(
        f"controller: dashboard {info['dashboard']}  broker {info['broker']}  devices trust {info['public_key']}")
    try:
        _wait_for_signal()
    finally:
        c.stop()


def _store(state_dir: Path):
    from edgedeploy.fleet.store import Store

    if not (state_dir / "fleet.db").is_file():
        raise UserError(f"{state_dir}/fleet.db does not exist; start `edgedeploy fleet controller --dir {state_dir}` first")
    return Store(state_dir / "fleet.db")


@fleet_app.command("devices")
def devices(state_dir: Path = DIR, json_: bool = JSON):
    """The fleet as the controller last heard it: identity, versions, health."""
    rows = _store(state_dir).devices()
    if json_:
        return emit_json(rows)
    console.print(table("devices", ["device", "group", "online", "serving", "p50 ms", "p99 ms", "RSS", "errors", "note"], [
        [d["device"], d.get("group"), "yes" if d.get("online", True) else "no",
         ", ".join(f"{m} v{v}" for m, v in (d.get("serving") or {}).items()) or "-",
         fmt_ms((d.get("health") or {}).get("p50_ms")), fmt_ms((d.get("health") or {}).get("p99_ms")),
         fmt_bytes((d.get("health") or {}).get("rss_bytes") or 0), (d.get("health") or {}).get("errors"),
         "; ".join(f"serves {x}, never published" for x in d.get("unpublished") or [])] for d in rows]))


@rollout_app.command("create")
def create(plan: Path = typer.Argument(..., help="The rollout plan (YAML)."), state_dir: Path = DIR,
           start: bool = typer.Option(False, "--start", help="Start it at once."), json_: bool = JSON):
    """Validate PLAN, select its devices, sign and publish its artifact; --start to begin."""
    from edgedeploy.fleet.rollouts import control, create_rollout, signing_key

    store = _store(state_dir)
    out = create_rollout(store, plan, state_dir=state_dir, key=signing_key(state_dir))
    if start:
        control(store, out["rollout"], "start")
    if json_:
        return emit_json(out)
    console.print(f"rollout {out['rollout']}: {out['model']} v{out['version']} to {len(out['targets'])} devices, "
                  f"stages reaching {out['stages']}; artifact {fmt_bytes(out['bytes'])} sha256 {out['sha256'][:12]}…"
                  + ("; started" if start else f"; start it: edgedeploy fleet rollout start {out['rollout']}"))


def _control(action: str):
    def command(name: str = typer.Argument(..., help="The rollout."), state_dir: Path = DIR, json_: bool = JSON,
                rollback: bool = typer.Option(False, "--rollback", help="abort only: send every device back too.")):
        from edgedeploy.fleet.rollouts import control

        if rollback and action != "abort":
            raise UserError("--rollback goes with abort only")
        _print_status(control(_store(state_dir), name, action, rollback=rollback), json_)
    command.__doc__ = {"start": "Start a created rollout.", "pause": "Pause: no new devices until resume.",
                       "resume": "Resume a paused rollout.", "abort": "Stop: devices not yet switched stay; "
                       "--rollback sends every device back."}[action]
    return command


for _action in ("start", "pause", "resume", "abort"):
    rollout_app.command(_action)(_control(_action))


@rollout_app.command("status")
def status_(name: str = typer.Argument(..., help="The rollout."), state_dir: Path = DIR, json_: bool = JSON):
    """The rollout's state, stages and each device's gate figures."""
    from edgedeploy.fleet.rollouts import status

    _print_status(status(_store(state_dir), name), json_)


def _print_status(st: dict, json_: bool) -> None:
    if json_:
        return emit_json(st)
    console.print(f"rollout {st['rollout']}: {st['model']} v{st['version']}, {st['state']}"
                  + (f" ({st['reason']})" if st["reason"] else "") + f", stage {st['stage']} of {len(st['stages'])}")
    console.print(table("stages", ["stage", "reach", "serving", "failed", "pending"],
                        [[f"{s['stage']}. {s['name']}", s["reach"], s["serving"], s["failed"], s["pending"]] for s in st["stages"]]))
    console.print(table("devices", ["device", "stage", "status", "gate figures", "reason"],
                        [[d["device"], d["stage"], d["status"], ", ".join(f"{k} {v:.3g}" for k, v in sorted(d["figures"].items())),
                          d["reason"]] for d in st["devices"]]))


@fleet_app.command("bench")
def bench(model: str = typer.Argument(..., help="The model name the devices serve (the plan's `model`)."),
          on: str = typer.Option(..., "--on", help="A device id or a group."),
          state_dir: Path = DIR, broker: str = BROKER,
          username: str = typer.Option(None, "--username"),
          password: str = typer.Option(None, "--password", envvar="EDGEDEPLOY_MQTT_PASSWORD"),
          ca: Path = typer.Option(None, "--ca", help="CA file for TLS to the broker."),
          engine: str = typer.Option(None, "--engine", help="Engine to measure (default: the one serving it)."),
          runs: int = typer.Option(20, min=1, help="Timed runs per device."),
          time_budget: float = typer.Option(10.0, "--time-budget", min=0.01, help="Seconds of timed runs at most."),
          timeout: float = typer.Option(300.0, min=1, help="Seconds to wait for the devices' answers."),
          json_: bool = JSON):
    """`bench` on the devices themselves: each measures the version it serves; rows marked by device."""
    from edgedeploy.benchmarking.report import COLUMNS, cells
    from edgedeploy.fleet.remote import remote_bench

    _store(state_dir).close()
    answers = remote_bench(state_dir, _address(broker, username, password, ca), model, on, runs=runs, engine=engine,
                           time_budget_s=time_budget, timeout_s=timeout)
    if json_:
        return emit_json([{**a, "results": [r.to_dict() for r in a["results"]]} for a in answers])
    rows = []
    for a in answers:
        rows += [[a["device"], a["version"], *cells(r)] for r in a["results"]]
        if not a["results"]:
            rows.append([a["device"], a["version"] or "-", model] + ["-"] * (len(COLUMNS) - 2) + [f"no row: {a['reason']}"])
    console.print(table(f"bench {model} on {on}", ["device", "version", *COLUMNS], rows))
