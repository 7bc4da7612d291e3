"""Five real agents (processes) on loopback, a real mosquitto, the controller in this process:
the scenarios of the fleet issue at CI scale."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from edgedeploy.cli import main
from edgedeploy.errors import UserError
from edgedeploy.fleet.controller import Controller
from edgedeploy.fleet.rollouts import control, create_rollout, status
from edgedeploy.fleet.transport import BrokerAddress
from edgedeploy.security.keys import generate_keypair, load_private_key
from edgedeploy.security.signing import sign_directory
from tests.fleet.conftest import TINY_CONFIG, AgentProc, Broker, golden_for, tiny_model, wait_for, write_plan

pytestmark = pytest.mark.timeout(300)
N = 5
TOKEN = "s3cret-token"
GATES = {"golden_max_diff": 1e-4, "p99_ms": "2s", "rss_mb": "4GB", "error_rate": 0.0}


class Fleet:
    def __init__(self, root):
        self.root, self.versions = root, itertools.count(2)
        self.broker = Broker(root / "broker").start()
        self.controller = self.new_controller()
        self.agents = [AgentProc(f"dev{i}", root / f"dev{i}", self.broker.port, root / "ctl" / "keys").start()
                       for i in range(N)]
        wait_for(lambda: sum(d.get("online", True) for d in self.store.devices()) == N, 90, "5 agents to report")
        self.good = tiny_model(root / "good.onnx")
        self.golden = golden_for(self.good, root / "golden.npz")

    def new_controller(self, http_port: int = 0) -> Controller:
        return Controller(self.root / "ctl", BrokerAddress(port=self.broker.port), http_port=http_port, tick_s=0.2,
                          token=TOKEN).start()

    @property
    def store(self):
        return self.controller.store

    def plan(self, artifact, *, stages, version=None, **kw) -> tuple[str, int]:
        v = version or next(self.versions)
        name = f"r{v}"
        shutil.copy2(artifact, self.root / f"art{v}.onnx") if artifact.is_file() else shutil.copytree(artifact, self.root / f"art{v}")
        p = write_plan(self.root / f"{name}.yaml", name=name, model="tiny", version=v,
                       artifact=f"art{v}.onnx" if artifact.is_file() else f"art{v}", golden="golden.npz",
                       config=TINY_CONFIG, stages=stages, **{"gates": GATES, "soak": "1s", **kw})
        create_rollout(self.store, p, state_dir=self.root / "ctl", key=self.controller.key)
        return name, v

    def run(self, name: str, timeout: float = 60) -> dict:
        control(self.store, name, "start")
        wait_for(lambda: self.store.rollout(name)["state"] not in ("running", "created"), timeout, f"rollout {name}")
        return status(self.store, name)

    def serving(self) -> dict[str, int]:
        return {d["device"]: (d.get("serving") or {}).get("tiny") for d in self.store.devices() if d["device"].startswith("dev")}

    def close(self):
        for a in self.agents:
            a.stop()
        self.controller.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        st = f.run(f.plan(f.good, version=1, stages=[{"percent": 100}])[0])  # the baseline, installed from nothing
        assert st["state"] == "done", st
        yield f
    finally:
        f.close()


def test_good_rollout_converges_with_no_failed_inference(fleet):
    name, v = fleet.plan(fleet.good, stages=[{"name": "canary", "devices": 1}, {"percent": 60}, {"percent": 100}])
    st = fleet.run(name)
    assert st["state"] == "done", st
    assert [s["serving"] for s in st["stages"]] == [1, 2, 2] and all(s["failed"] == 0 for s in st["stages"])
    wait_for(lambda: set(fleet.serving().values()) == {v}, 10, "every device to report v%d" % v)
    for d in st["devices"]:
        assert d["figures"]["golden_max_diff"] <= 1e-4 and d["figures"]["error_rate"] == 0.0
    health = [d["health"] for d in fleet.store.devices()]
    assert all(h["served_total"] > 0 and h["failed_total"] == 0 for h in health), health


@pytest.mark.parametrize("kind", ["golden mismatch", "crashes on load"])
def test_bad_model_halts_at_the_canary(fleet, kind, tmp_path):
    before = fleet.serving()
    if kind == "golden mismatch":
        bad = tiny_model(tmp_path / "bad.onnx", bias=0.5)  # loads and runs, answers differently
    else:
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"\x08\x07not a model")
    name, v = fleet.plan(bad, stages=[{"name": "canary", "devices": 1}, {"percent": 100}], on_failure="rollback_stage")
    st = fleet.run(name)
    assert st["state"] == "rolled_back" and st["stage"] == 1, st
    assert [d["device"] for d in st["devices"]] == ["dev0"]  # nobody outside the canary was ever asked
    assert st["devices"][0]["status"] == "failed"
    assert ("golden_max_diff" if kind == "golden mismatch" else "not a valid ONNX model") in st["devices"][0]["reason"]
    wait_for(lambda: fleet.serving() == before, 10, "the fleet to serve what it served before")
    assert not (fleet.root / "dev0" / "repo" / "tiny" / str(v)).exists()  # the canary dropped the bad slot


@pytest.mark.parametrize("attack", ["tampered", "wrongly signed"])
def test_untrusted_artifact_is_refused_by_every_device(fleet, attack, tmp_path):
    before = fleet.serving()
    if attack == "wrongly signed":
        d = tmp_path / "release"
        d.mkdir()
        shutil.copy2(fleet.good, d / "model.onnx")
        (d / "config.yaml").write_text("warmup: {input: 1x3x8x8}\n")
        rogue, _ = generate_keypair(tmp_path / "rogue")
        v = next(fleet.versions)
        sign_directory(d, load_private_key(rogue), extra={"model": "tiny", "version": v})
        name, _ = fleet.plan(d, version=v, stages=[{"percent": 100}], gates={}, thresholds={"errors": N}, on_failure="halt")
    else:
        name, v = fleet.plan(fleet.good, stages=[{"percent": 100}], thresholds={"errors": N}, on_failure="halt")
        art = fleet.root / "ctl" / "artifacts" / json.loads(fleet.store.tx("SELECT plan FROM rollouts WHERE name=?", name)[0][0])["artifact"]["file"]
        data = bytearray(art.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, after signing
        art.write_bytes(bytes(data))
    st = fleet.run(name)
    assert st["state"] == "halted", st
    assert [d["status"] for d in st["devices"]] == ["refused"] * N
    expected = "tampered or corrupt" if attack == "tampered" else "unknown key"
    assert all(expected in d["reason"] for d in st["devices"]), st["devices"]
    assert fleet.serving() == before


def test_broker_killed_and_restarted_mid_rollout_converges(fleet):
    name, v = fleet.plan(fleet.good, stages=[{"devices": 2}, {"percent": 100}])
    control(fleet.store, name, "start")
    wait_for(lambda: fleet.store.assignments(name), 10, "the first stage to be sent")
    fleet.broker.stop()  # killed, and it keeps nothing: retained desired states are gone too
    fleet.broker.start()
    wait_for(lambda: fleet.store.rollout(name)["state"] != "running", 90, "the rollout to finish")
    assert fleet.store.rollout(name)["state"] == "done"
    wait_for(lambda: set(fleet.serving().values()) == {v}, 20, "every device to serve v%d" % v)


def test_controller_restart_resumes(fleet):
    name, v = fleet.plan(fleet.good, stages=[{"devices": 1}, {"percent": 100}], soak="2s")
    control(fleet.store, name, "start")
    wait_for(lambda: fleet.store.assignments(name), 10, "the canary to be sent")
    port = fleet.controller.http_port
    fleet.controller.stop()
    fleet.controller = fleet.new_controller(port)  # same database and address (devices may be downloading from it)
    wait_for(lambda: fleet.store.rollout(name)["state"] != "running", 60, "the rollout to finish")
    assert status(fleet.store, name)["state"] == "done"
    wait_for(lambda: set(fleet.serving().values()) == {v}, 20, "every device to serve v%d" % v)


def test_device_reporting_an_unpublished_version_is_flagged(fleet, capsys):
    import paho.mqtt.publish as publish

    state = {"device": "stranger", "group": "default", "serving": {"tiny": 99}, "online": True}
    publish.single("edgedeploy/fleet/devices/stranger/state", json.dumps(state), qos=1, retain=True,
                   hostname="127.0.0.1", port=fleet.broker.port)
    wait_for(lambda: any(d["device"] == "stranger" for d in fleet.store.devices()), 10, "the report")
    assert main(["fleet", "devices", "--dir", str(fleet.root / "ctl")]) == 0
    assert "serves tiny v99, never published" in capsys.readouterr().out
    publish.single("edgedeploy/fleet/devices/stranger/state", b"", retain=True, hostname="127.0.0.1", port=fleet.broker.port)
    fleet.store.tx("DELETE FROM devices WHERE id='stranger'")


def error_lines(capsys) -> list[str]:
    """The CLI's error lines (other threads of this process - the fleet's controller - may log too)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("edgedeploy: error:")]


def test_agent_with_wrong_broker_or_bad_credentials_is_one_line(tmp_path, capsys):
    _, pub = generate_keypair(tmp_path / "keys")
    base = ["agent", "--id", "lost", "--dir", str(tmp_path / "a"), "--trust", str(pub)]
    assert main([*base, "--broker", "127.0.0.1:1"]) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "broker mqtt://127.0.0.1:1: cannot connect" in err[0]
    locked = Broker(tmp_path / "locked", users={"edge": "right"}).start()
    try:
        assert main([*base, "--broker", f"127.0.0.1:{locked.port}", "--username", "edge", "--password", "wrong"]) == 2
        err = error_lines(capsys)
        assert len(err) == 1 and "refused the connection" in err[0]
    finally:
        locked.stop()


def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (requirements-test.lock)")
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Chromium not installed: apt-get install -y chromium chromium-driver (scripts/setup.sh --test)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_dashboard_in_headless_chromium(fleet, tmp_path):
    """The page a person opens: fleet table, rollouts by stage with gate figures, latency plots;
    screenshots kept (EDGEDEPLOY_SCREENSHOTS=DIR copies them there). Changes need the token."""
    import os

    import httpx
    from selenium.webdriver.common.by import By

    url = f"http://127.0.0.1:{fleet.controller.http_port}"
    wait_for(lambda: all(len(fleet.store.health(f"dev{i}")) >= 2 for i in range(N)), 20, "health history")
    browser = _chromium()
    try:
        browser.get(url + "/")
        rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tr.device")
        assert len([r for r in rows if r.get_attribute("id").startswith("dev-dev")]) == N
        assert all("tiny v" in r.text for r in rows if r.get_attribute("id").startswith("dev-dev"))
        assert browser.find_elements(By.CSS_SELECTOR, "#fleet svg.plot polyline"), "no latency plot drawn"
        r1 = browser.find_element(By.ID, "rollout-r1")
        assert "done" in r1.find_element(By.CLASS_NAME, "state").text
        halted = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "section.rollout .state")]
        assert "rolled_back" in halted and "halted" in halted
        assert "golden_max_diff" in browser.find_element(By.TAG_NAME, "body").text  # gate figures per device
        shots = [tmp_path / "fleet.png"]
        browser.save_screenshot(str(shots[0]))
        browser.execute_script("document.getElementById('rollout-r1').scrollIntoView()")
        shots.append(tmp_path / "rollout.png")
        browser.save_screenshot(str(shots[1]))
    finally:
        browser.quit()
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if os.environ.get("EDGEDEPLOY_SCREENSHOTS"):
            shutil.copy2(shot, Path(os.environ["EDGEDEPLOY_SCREENSHOTS"]) / shot.name)
    # read-only unless authenticated
    name, _ = fleet.plan(fleet.good, stages=[{"percent": 100}])
    assert httpx.post(f"{url}/api/rollouts/{name}/abort").status_code == 401
    assert httpx.post(f"{url}/api/rollouts/{name}/abort", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = httpx.post(f"{url}/api/rollouts/{name}/abort", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    wait_for(lambda: fleet.store.rollout(name)["state"] == "aborted", 10, "the abort")


def test_remote_bench_rows_come_back_marked_by_device(fleet, capsys):
    base = ["fleet", "bench", "tiny", "--dir", str(fleet.root / "ctl"), "--broker", f"127.0.0.1:{fleet.broker.port}"]
    assert main([*base, "--on", "dev1", "--runs", "5", "--time-budget", "2", "--timeout", "120", "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["device"] for a in answers] == ["dev1"] and answers[0]["version"] == fleet.serving()["dev1"]
    row = answers[0]["results"][0]
    assert row["status"] == "ok" and row["latency_ms"]["p50"] > 0 and row["config"]["shape"] == [1, 3, 8, 8]
    assert main([*base, "--on", "nowhere"]) == 2
    assert "--on 'nowhere' names no online device or group" in capsys.readouterr().err


def test_ab_stage_compares_candidate_devices_with_the_rest(fleet):
    # the same model as the baseline: no real difference, so the statistics must let it through
    name, v = fleet.plan(fleet.good, stages=[{"name": "ab", "devices": 2, "ab": {"min_samples": 30, "max_slowdown": 1.0}},
                                             {"percent": 100}])
    st = fleet.run(name)
    assert st["state"] == "done", st
    ab = st["stages"][0]["ab"]
    assert ab["recommendation"] == "promote", ab
    assert ab["candidate"]["version"] == v and ab["baseline"]["version"] != v
    assert ab["candidate"]["requests"] >= 30 and ab["baseline"]["requests"] >= 30
    assert "Mann-Whitney" in ab["method"]


def test_agent_over_tls_with_credentials(tmp_path, fleet):
    """TLS (the broker's certificate checked against --ca) and a user name and password."""
    from edgedeploy.fleet.agent import Agent, AgentSettings
    from edgedeploy.fleet.broker import self_signed
    from edgedeploy.fleet.transport import BrokerAddress as Address

    b = Broker(tmp_path / "tls", users={"box": "pw"}, tls=True).start()
    try:
        address = Address(port=b.port, tls_ca=str(b.ca), username="box", password="pw")
        agent = Agent(AgentSettings(device_id="secure", broker=address, state_dir=tmp_path / "secure",
                                    trusted_keys=(str(fleet.root / "ctl" / "keys"),))).start()
        assert agent.link.connected
        agent.stop()
        (tmp_path / "other").mkdir()
        other, _, _ = self_signed(tmp_path / "other")  # another CA: the broker's certificate does not verify
        with pytest.raises(UserError, match="CERTIFICATE_VERIFY_FAILED"):
            Agent(AgentSettings(device_id="wary", broker=Address(port=b.port, tls_ca=str(other), username="box", password="pw"),
                                state_dir=tmp_path / "wary", trusted_keys=(str(fleet.root / "ctl" / "keys"),))).start()
    finally:
        b.stop()


def test_rollback_comes_from_the_previous_slot_without_a_download(fleet):
    before = fleet.serving()
    name, v = fleet.plan(fleet.good, stages=[{"devices": 2}])
    assert fleet.run(name)["state"] == "done"
    switched = [d["device"] for d in status(fleet.store, name)["devices"]]
    wait_for(lambda: all(fleet.serving()[d] == v for d in switched), 10, "the two devices to report v%d" % v)
    downloaded = {d["device"]: d["bytes_downloaded"] for d in fleet.store.devices() if d["device"] in switched}
    control(fleet.store, name, "abort", rollback=True)  # after the fact: everything back
    wait_for(lambda: fleet.serving() == before, 20, "the two devices to go back")
    st = status(fleet.store, name)
    assert st["state"] == "aborted" and {d["status"] for d in st["devices"]} == {"reverted"}
    for d in fleet.store.devices():
        if d["device"] in switched:
            assert d["last_apply"]["from_slot"] is True and d["bytes_downloaded"] == downloaded[d["device"]]
            assert v not in d["slots"]["tiny"] and before[d["device"]] in d["slots"]["tiny"]  # two slots, v gone
