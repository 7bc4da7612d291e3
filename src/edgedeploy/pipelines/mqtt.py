"""The MQTT sink: each event published to a topic with QoS 1, through a bounded local
:class:`Spool` that keeps what the broker has not acknowledged (on disk with ``spool_dir``, so it
outlives a restart) and never publishes what it did not write itself.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.pipelines.sinks import to_json
from edgedeploy.pipelines.stage import Frame, Sink

log = logging.getLogger(__name__)


class Spool:
    """Messages not yet acknowledged by the broker, oldest first, at most ``max_messages``.

    With a ``directory`` each message is a file (``<seq>.json``, the only names the spool owns)
    removed on acknowledgement, so messages outlive a restart and are sent on the next start;
    without one they live in memory. At start, anything else in the directory (``notes.json``,
    a sub-directory, a link) is left alone with a warning, and an entry of the spool's own that
    is not a whole JSON object (empty, truncated, garbage, or a ``.tmp`` a crash left) is moved
    to ``quarantine/`` with a warning: never published. When full, the oldest message is dropped
    and remembered in ``dropped`` (its payload's ``id`` and ``code`` where it has them) so the
    report can say what was lost.
    """

    NAME = re.compile(r"(\d{1,18})\.json")
    TEMP = re.compile(r"(\d{1,18})\.tmp")
    QUARANTINE = "quarantine"

    def __init__(self, max_messages: int = 10_000, directory: str | Path | None = None):
        if max_messages < 1:
            raise UserError(f"spool size must be at least 1 message, got {max_messages}")
        self.max_messages = max_messages
        self.directory = Path(directory) if directory else None
        self._items: OrderedDict[int, bytes] = OrderedDict()
        self.dropped: list[dict] = []
        self.ignored: list[str] = []  # names in the directory that are not the spool's
        self.quarantined: list[str] = []  # the spool's entries that could not be published
        self._lock = threading.Lock()
        self._seq = 0
        if self.directory:
            self._load()

    def _load(self) -> None:
        if self.directory.exists() and not self.directory.is_dir():
            raise UserError(f"spool_dir {self.directory} is a file, not a directory; give a folder for the spool")
        self.directory.mkdir(parents=True, exist_ok=True)
        found: dict[int, bytes] = {}
        seqs = []
        for path in sorted(self.directory.iterdir()):
            own, temp = self.NAME.fullmatch(path.name), self.TEMP.fullmatch(path.name)
            if path.name == self.QUARANTINE and path.is_dir() and not path.is_symlink():
                continue
            if own or temp:  # new entries are numbered past it, even one ignored below
                seqs.append(int((own or temp).group(1)))
            if not (own or temp) or path.is_symlink() or not path.is_file():
                self.ignored.append(path.name)
                log.warning("spool %s: ignoring %s (not a spool entry: the spool owns regular files "
                            "named <number>.json)", self.directory, path.name)
                continue
            payload = path.read_bytes() if own else b""
            if own and _is_message(payload):
                found[seqs[-1]] = payload
            else:
                self._quarantine(path, "a write a crash cut short" if temp else "not a whole JSON object")
        self._items = OrderedDict(sorted(found.items()))
        self._seq = max(seqs, default=-1) + 1
        if self._items:
            log.info("spool %s: %d messages from an earlier run will be sent", self.directory, len(self._items))

    def _quarantine(self, path: Path, why: str) -> None:
        where = self.directory / self.QUARANTINE
        where.mkdir(exist_ok=True)
        target = where / f"{path.name}.{uuid.uuid4().hex[:8]}"
        path.replace(target)
        self.quarantined.append(path.name)
        log.warning("spool %s: %s is %s; moved to %s, not published", self.directory, path.name, why, target)

    def add(self, payload: bytes) -> int:
        with self._lock:
            while len(self._items) >= self.max_messages:
                seq, old = self._items.popitem(last=False)
                self._unlink(seq)
                try:
                    info = json.loads(old)
                    self.dropped.append({k: info.get(k) for k in ("id", "type", "code") if k in info})
                except ValueError:
                    self.dropped.append({"seq": seq})
                log.warning("spool full (%d messages): dropped the oldest", self.max_messages)
            seq, self._seq = self._seq, self._seq + 1
            self._items[seq] = payload
            if self.directory:
                tmp = self.directory / f"{seq}.tmp"
                tmp.write_bytes(payload)
                tmp.replace(self.directory / f"{seq}.json")
            return seq

    def pending(self) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(self._items.items())

    def done(self, seq: int) -> None:
        with self._lock:
            if self._items.pop(seq, None) is not None:
                self._unlink(seq)

    def _unlink(self, seq: int) -> None:
        if self.directory:
            (self.directory / f"{seq}.json").unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._items)


def _is_message(payload: bytes) -> bool:
    """A spooled event as :class:`MqttSink` writes it: one whole JSON object."""
    try:
        return isinstance(json.loads(payload), dict)
    except ValueError:  # empty, truncated, not UTF-8, not JSON
        return False


class MqttSink(Sink):
    """Publish each event as JSON to ``topic`` on an MQTT broker, QoS 1 (at least once).

    Every event goes into the :class:`Spool` first and leaves it only when the broker
    acknowledges it (PUBACK); while the broker is down (at start or later) events wait there
    and paho reconnects with back-off (``backoff`` s, doubling). Messages in flight when the
    connection drops are sent again, so a subscriber may see one twice: each carries an ``id``.
    ``close()`` waits up to ``drain_timeout`` s for the spool to empty and reports what was
    delivered, what is left (kept on disk if ``spool_dir`` is set) and what was dropped.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 1883, topic: str = "edgedeploy/events",
                 qos: int = 1, client_id: str | None = None, spool_max: int = 10_000, spool_dir: str | None = None,
                 backoff: tuple[float, float] = (0.5, 8.0), max_inflight: int = 20, drain_timeout: float = 10.0,
                 keepalive: int = 30, name: str = "mqtt"):
        if qos not in (0, 1, 2):
            raise UserError(f"mqtt qos {qos} is not 0, 1 or 2")
        self.host, self.port, self.topic, self.qos = host, int(port), topic, qos
        self.client_id = client_id or f"edgedeploy-{uuid.uuid4().hex[:8]}"
        self.spool = Spool(spool_max, spool_dir)
        self.backoff, self.max_inflight, self.drain_timeout = backoff, max_inflight, drain_timeout
        self.keepalive, self.name = keepalive, name
        self.delivered = self.connects = self.disconnects = 0
        # Owned by the send thread alone. paho calls on_publish holding its own message lock,
        # which publish() also takes: sharing a lock with the callback would deadlock, so the
        # callback only queues the acknowledged ids (deque appends are atomic).
        self._inflight: dict[int, int] = {}  # mid → spool seq
        self._acked: deque[int] = deque()
        self._early: set[int] = set()  # acks that came before publish() returned their mid
        self._lost = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._closing = False
        self._closing_deadline = float("inf")
        self._client = None
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def open(self) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise UserError("the mqtt sink needs paho-mqtt: pip install paho-mqtt") from None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.reconnect_delay_set(min_delay=max(1, int(self.backoff[0])), max_delay=int(self.backoff[1]))
        client.max_inflight_messages_set(self.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()  # its thread connects, and reconnects with back-off, broker up or not
        self._thread = threading.Thread(target=self._send_loop, name=f"mqtt-{self.topic}", daemon=True)
        self._thread.start()

    # paho callbacks (its network thread) -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("mqtt %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        self.connects += 1
        if self.connects > 1:
            log.warning("mqtt %s:%d: reconnected; resending %d spooled messages", self.host, self.port, len(self.spool))
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if self._connected.is_set() and not self._closing:
            self.disconnects += 1
            log.warning("mqtt %s:%d: connection lost (%s); spooling", self.host, self.port, reason_code)
        self._connected.clear()
        self._lost.set()  # what is in flight was not acknowledged: still spooled, sent again
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        self._acked.append(mid)
        self._wake.set()

    def _settle(self) -> None:
        """Apply acknowledgements and connection losses (send thread only)."""
        if self._lost.is_set():
            self._lost.clear()
            self._inflight.clear()
            self._early.clear()
        while self._acked:
            mid = self._acked.popleft()
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early.add(mid)
                continue
            self.spool.done(seq)
            self.delivered += 1

    # our side -----------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        for event in frame.events:
            event.setdefault("id", uuid.uuid4().hex)
            self.spool.add(to_json(event).encode())
        if frame.events:
            self._wake.set()

    def _send_loop(self) -> None:
        while True:
            self._wake.wait(0.2)
            self._wake.clear()
            self._settle()
            done_closing = self._closing and self._closing_deadline < time.monotonic()
            if (self._closing and not len(self.spool)) or done_closing:
                return
            if not self._connected.is_set():
                continue
            busy = set(self._inflight.values())
            room = self.max_inflight - len(self._inflight)
            for seq, payload in self.spool.pending():
                if room <= 0 or not self._connected.is_set():
                    break
                if seq in busy:
                    continue
                info = self._client.publish(self.topic, payload, qos=self.qos)
                if info.rc != 0:
                    break  # not connected after all: try again on the next wake-up
                if self.qos == 0:
                    self.spool.done(seq)
                    self.delivered += 1
                elif info.mid in self._early:
                    self._early.discard(info.mid)
                    self.spool.done(seq)
                    self.delivered += 1
                else:
                    self._inflight[info.mid] = seq
                room -= 1

    def close(self) -> dict:
        self._closing_deadline = time.monotonic() + self.drain_timeout
        self._closing = True
        self._wake.set()
        if self._thread:
            self._thread.join(self.drain_timeout + 1)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        left = len(self.spool)
        report = {"broker": f"{self.host}:{self.port}", "topic": self.topic, "delivered": self.delivered,
                  "spooled": left, "dropped": len(self.spool.dropped), "dropped_events": self.spool.dropped[:100],
                  "disconnects": self.disconnects, "spool_ignored": self.spool.ignored,
                  "spool_quarantined": self.spool.quarantined}
        if left:
            where = f"kept in {self.spool.directory} for the next run" if self.spool.directory else "lost (no spool_dir)"
            log.warning("mqtt: %d events not acknowledged by %s:%d: %s", left, self.host, self.port, where)
        if self.spool.dropped:
            log.warning("mqtt: the spool was full; %d oldest events dropped: %s", len(self.spool.dropped),
                        ", ".join(str(d.get("code") or d.get("id")) for d in self.spool.dropped[:10]))
        return report
