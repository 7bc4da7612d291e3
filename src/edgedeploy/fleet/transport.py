"""One MQTT 5 connection (paho-mqtt): QoS 1, a persistent session, TLS and credentials, reconnects.

The first connection is made before :meth:`Link.open` returns, so a wrong address or bad
credentials is one clear error at start; after that paho reconnects with back-off, and every
subscription (and ``on_connect`` hook, e.g. re-publishing retained state after a broker restart
that lost it) is renewed on each reconnect.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Callable

from edgedeploy.errors import UserError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


@dataclass(frozen=True, kw_only=True)
class BrokerAddress:
    """Where the broker is and how to log in. ``tls_ca``: a CA file turns TLS on (``tls=True`` uses the
    system's CAs). Any MQTT 5 broker works: mosquitto, an EMQX or HiveMQ cluster behind one address."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    keepalive: int = 15
    session_expiry_s: int = 3600

    @classmethod
    def parse(cls, text: str, **kw) -> BrokerAddress:
        """``HOST[:PORT]`` or ``mqtt://HOST:PORT`` / ``mqtts://HOST:PORT``."""
        tls = text.startswith("mqtts://")
        hostport = text.split("://", 1)[-1]
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        try:
            p = int(port) if port else (8883 if tls else 1883)
        except ValueError:
            raise UserError(f"broker {text!r}: the port {port!r} is not a number; expected HOST[:PORT]") from None
        if not host:
            raise UserError(f"broker {text!r}: no host; expected HOST[:PORT], e.g. 127.0.0.1:1883")
        return cls(host=host, port=p, tls=tls or kw.pop("tls", False), **kw)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls or self.tls_ca else 'mqtt'}://{self.host}:{self.port}"


class Link:
    """A paho MQTT 5 client with handlers per topic filter, a will, and hooks run on every connect."""

    def __init__(self, address: BrokerAddress, client_id: str, *, will: tuple[str, bytes] | None = None):
        self.address, self.client_id, self.will = address, client_id, will
        self._handlers: dict[str, Handler] = {}
        self._hooks: list[Callable[[], None]] = []
        self._connected = threading.Event()
        self._refused: str | None = None
        self._first = threading.Event()
        self.connects = 0
        self._closing = False
        self._client = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        self._handlers[topic_filter] = handler
        if self.connected:
            self._client.subscribe(topic_filter, qos=1)

    def on_connect(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def open(self, timeout_s: float = 10.0) -> Link:
        import paho.mqtt.client as mqtt
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes

        a = self.address
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if a.username is not None:
            client.username_pw_set(a.username, a.password)
        if a.tls or a.tls_ca:
            client.tls_set(ca_certs=a.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if self.will:
            client.will_set(self.will[0], self.will[1], qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        client.on_connect, client.on_disconnect, client.on_message = self._on_connect, self._on_disconnect, self._on_message
        self._client = client
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = a.session_expiry_s  # the broker keeps our session (and QoS 1 queue) across drops
        try:
            client.connect(a.host, a.port, keepalive=a.keepalive, clean_start=False, properties=props)
        except (OSError, ValueError) as exc:
            raise UserError(f"broker {a}: cannot connect ({exc}); check the address and that the broker runs") from None
        client.loop_start()
        if not self._first.wait(timeout_s):
            self.close()
            raise UserError(f"broker {a}: no answer to CONNECT within {timeout_s:g} s; is it an MQTT broker?")
        if self._refused:
            self.close()
            raise UserError(f"broker {a} refused the connection: {self._refused}; check --username/--password")
        return self

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1; while disconnected paho queues it and sends it after the reconnect."""
        self._client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        if self._client is not None:
            self._closing = True
            self._client.disconnect()
            self._client.loop_stop()

    # paho's network thread -------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._first.set()
            client.disconnect()
            return
        self.connects += 1
        self._connected.set()
        for f in self._handlers:
            client.subscribe(f, qos=1)
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")
        self._first.set()
        if self.connects > 1:
            log.info("%s: reconnected to %s", self.client_id, self.address)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("%s: connection to %s lost (%s); reconnecting", self.client_id, self.address, reason_code)
        self._connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        import paho.mqtt.client as mqtt

        for f, handler in list(self._handlers.items()):
            if mqtt.topic_matches_sub(f, msg.topic):
                try:
                    handler(msg.topic, msg.payload)
                except Exception:
                    log.exception("handling %s failed", msg.topic)
