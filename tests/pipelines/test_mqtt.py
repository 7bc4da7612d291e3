"""MQTT against a real mosquitto we start ourselves: QoS 1 delivery, a broker down at start, a broker
that goes away and comes back (spooled, then delivered), and a full spool that says what it dropped."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edgedeploy.pipelines import Frame
from edgedeploy.pipelines.mqtt import MqttSink, Spool


class Subscriber:
    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self.payloads: list[bytes] = []  # everything received, parsable or not
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{port}")
        self.client.on_connect = lambda c, u, f, rc, p=None: (c.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(5)
        time.sleep(0.2)  # the SUBACK

    def _on_message(self, client, userdata, message) -> None:
        self.payloads.append(message.payload)
        try:
            self.messages.append(json.loads(message.payload))
        except ValueError:
            pass

    def codes(self) -> set[str]:
        return {m["code"] for m in self.messages}

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _events(start: int, n: int) -> Frame:
    f = Frame(start, None)
    f.events = [{"type": "container", "code": f"E{start + i:04d}"} for i in range(n)]
    return f


def _wait(cond, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_events_delivered_with_qos1(broker):
    broker.start()
    sub = Subscriber(broker.port, "gate/events")
    sink = MqttSink(port=broker.port, topic="gate/events")
    sink.open()
    sink.write(_events(0, 5))
    report = sink.close()
    assert _wait(lambda: len(sub.codes()) == 5, 5)
    sub.close()
    assert report["delivered"] == 5 and report["spooled"] == 0 and report["dropped"] == 0
    assert all("id" in m for m in sub.messages)


def test_broker_down_at_start_then_up_nothing_lost(broker, tmp_path):
    sink = MqttSink(port=broker.port, topic="t", spool_dir=str(tmp_path / "spool"), backoff=(0.2, 1))
    sink.open()  # nothing listening yet
    sink.write(_events(0, 4))
    time.sleep(0.5)
    assert not sink.connected and len(sink.spool) == 4
    assert len(list((tmp_path / "spool").glob("*.json"))) == 4  # on disk while the broker is down
    broker.start()
    sub = Subscriber(broker.port, "t")
    assert _wait(lambda: len(sink.spool) == 0, 10)
    report = sink.close()
    assert _wait(lambda: sub.codes() == {f"E{i:04d}" for i in range(4)}, 5)
    sub.close()
    assert report["delivered"] == 4 and report["spooled"] == 0
    assert not list((tmp_path / "spool").glob("*.json"))


def test_broker_goes_away_events_spool_and_arrive_after_restart(broker):
    broker.start()
    sink = MqttSink(port=broker.port, topic="t", backoff=(0.2, 1))
    sink.open()
    assert _wait(lambda: sink.connected, 5)
    sink.write(_events(0, 3))
    assert _wait(lambda: sink.delivered == 3, 5)
    broker.stop()
    assert _wait(lambda: not sink.connected, 5)
    sink.write(_events(3, 5))  # broker down: spooled
    time.sleep(0.3)
    assert len(sink.spool) == 5
    broker.start()
    sub = Subscriber(broker.port, "t")  # persistence is off: subscribe again after the restart
    assert _wait(lambda: {f"E{i:04d}" for i in range(3, 8)} <= sub.codes(), 15)
    report = sink.close()
    sub.close()
    assert report["delivered"] == 8 and report["spooled"] == 0 and report["disconnects"] >= 1


def test_full_spool_drops_the_oldest_and_reports_them():
    spool = Spool(3)
    for i in range(5):
        spool.add(json.dumps({"id": str(i), "code": f"C{i}"}).encode())
    assert [json.loads(p)["code"] for _, p in spool.pending()] == ["C2", "C3", "C4"]
    assert [d["code"] for d in spool.dropped] == ["C0", "C1"]


def test_spool_survives_a_restart(tmp_path):
    first = Spool(10, tmp_path)
    first.add(b'{"code": "A"}')
    first.add(b'{"code": "B"}')
    seq, _ = first.pending()[0]
    first.done(seq)
    again = Spool(10, tmp_path)
    assert [p for _, p in again.pending()] == [b'{"code": "B"}']
    again.add(b'{"code": "C"}')
    assert len(again) == 2


def test_a_spool_dir_that_is_a_file_is_one_clear_error(tmp_path):
    from edgedeploy.errors import UserError

    (tmp_path / "spool").write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a directory"):
        Spool(10, tmp_path / "spool")


def test_broker_never_comes_back_close_reports_what_is_left(broker):
    sink = MqttSink(port=broker.port, topic="t", spool_max=2, drain_timeout=0.5)
    sink.open()
    sink.write(_events(0, 3))
    report = sink.close()
    assert report["delivered"] == 0 and report["spooled"] == 2 and report["dropped"] == 1
    assert report["dropped_events"][0]["code"] == "E0000"


def _run_pipeline(frames: int, prefix: str, sink: MqttSink) -> dict:
    """A pipeline of ``frames`` frames, each emitting one event coded ``<prefix><index>``, into ``sink``."""
    import numpy as np

    from edgedeploy.pipelines import ArraySource, FunctionStage, Pipeline

    def emit(frame):
        frame.events.append({"type": "container", "code": f"{prefix}{frame.index}"})
        return frame
    report = Pipeline(ArraySource([np.zeros((4, 4, 3), np.uint8)] * frames), [FunctionStage(emit, "emit")],
                      [sink]).run()
    return report.sinks[sink.name]


def test_mqtt_sink_in_a_pipeline(broker):
    broker.start()
    sub = Subscriber(broker.port, "p")
    assert _run_pipeline(6, "F", MqttSink(port=broker.port, topic="p"))["delivered"] == 6
    assert _wait(lambda: len(sub.codes()) == 6, 5)
    sub.close()


def test_foreign_and_corrupt_spool_entries_are_not_published(broker, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "3.json").write_bytes(b'{"type": "container", "code": "OLD1", "id": "a"}')  # left by a run: sent
    (spool / "notes.json").write_text('{"code": "NOTE"}')  # an operator's file: not the spool's
    (spool / "77.json").mkdir()  # a directory with a spool-like name
    (spool / "4.json").write_bytes(b"")  # empty
    (spool / "5.json").write_bytes(b'{"type": "container", "co')  # truncated
    (spool / "6.json").write_bytes(b"\x00\xffgarbage")
    (spool / "7.json").write_bytes(b'["not", "an", "event"]')
    (spool / "8.tmp").write_bytes(b'{"type": "cont')  # a write a crash cut short
    broker.start()
    sub = Subscriber(broker.port, "s")
    r = _run_pipeline(3, "N", MqttSink(port=broker.port, topic="s", spool_dir=str(spool)))
    assert r["delivered"] == 4 and r["spooled"] == 0
    assert _wait(lambda: len(sub.payloads) >= 4, 5)
    time.sleep(0.3)  # nothing else arrives
    sub.close()
    assert sorted(m["code"] for m in sub.messages) == ["N0", "N1", "N2", "OLD1"]
    assert len(sub.payloads) == 4
    assert r["spool_ignored"] == ["77.json", "notes.json"]
    assert sorted(r["spool_quarantined"]) == ["4.json", "5.json", "6.json", "7.json", "8.tmp"]
    assert (spool / "notes.json").read_text() == '{"code": "NOTE"}' and (spool / "77.json").is_dir()
    assert len(list((spool / "quarantine").iterdir())) == 5
    assert sorted(p.name for p in spool.iterdir()) == ["77.json", "notes.json", "quarantine"]
