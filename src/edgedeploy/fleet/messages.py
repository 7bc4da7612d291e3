"""MQTT topics and the signed desired state.

A device follows the *desired state* retained on ``PREFIX/devices/ID/desired`` (or on its group's
``PREFIX/groups/GROUP/desired``; the higher sequence number wins). Every desired state is signed by
the controller (Ed25519) and carries a sequence number that only grows and an expiry time:
a device refuses a desired state it cannot verify, one whose sequence is not above the last it
accepted (a replayed old state: rollback attack) and one past its expiry (a withheld update:
freeze attack). Rolling back is therefore a *new* desired state naming the older version.
Devices publish their state (identity, hardware, versions, health, last apply) retained on
``PREFIX/devices/ID/state``; the broker's will marks them offline when they vanish.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict, dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgedeploy.errors import UserError
from edgedeploy.security.keys import key_id

PREFIX = "edgedeploy/fleet"


def device_topic(device: str, kind: str) -> str:
    return f"{PREFIX}/devices/{device}/{kind}"


def group_topic(group: str) -> str:
    return f"{PREFIX}/groups/{group}/desired"


class MessageRefused(UserError):
    """A desired state the device will not follow; the message says why."""


@dataclass(frozen=True, kw_only=True)
class Desired:
    """What one device should serve. ``artifact`` (URL) and ``sha256`` are None for a version the
    device already holds (a rollback to its previous slot). ``gates``: metric → limit, checked
    on the device after the swap."""

    seq: int
    model: str
    version: int
    rollout: str = ""
    artifact: str | None = None
    sha256: str | None = None
    size: int | None = None
    gates: dict = field(default_factory=dict)
    soak_s: float = 0.0  # serve this long after the swap before the error-rate gate is read
    expires: float = 0.0
    issued: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign_desired(desired: Desired, key: Ed25519PrivateKey) -> bytes:
    """The MQTT payload: the desired state, its signature and the signer's key id."""
    payload = desired.to_dict()
    return json.dumps({"desired": payload, "key_id": key_id(key.public_key()),
                       "sig": base64.b64encode(key.sign(_canonical(payload))).decode()}).encode()


def open_desired(raw: bytes, trusted: list[Ed25519PublicKey], *, last_seq: int, now: float | None = None) -> Desired:
    """Verify a desired-state payload: trusted signer, sequence above ``last_seq``, not expired."""
    try:
        msg = json.loads(raw)
        payload, kid, sig = msg["desired"], msg["key_id"], base64.b64decode(msg["sig"])
        desired = Desired(**payload)
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageRefused(f"desired state is not a signed edgedeploy message ({exc})") from None
    key = next((k for k in trusted if key_id(k) == kid), None)
    if key is None:
        raise MessageRefused(f"desired state seq {desired.seq} is signed by key {kid}, which this device does not trust")
    try:
        key.verify(sig, _canonical(payload))
    except InvalidSignature:
        raise MessageRefused(f"desired state seq {desired.seq}: the signature does not verify (changed in transit)") from None
    if desired.seq <= last_seq:
        raise MessageRefused(f"desired state seq {desired.seq} is not above the last accepted ({last_seq}); "
                             "a replayed older state is refused")
    if desired.expires and (now or time.time()) > desired.expires:
        raise MessageRefused(f"desired state seq {desired.seq} expired at {time.ctime(desired.expires)}; "
                             "the controller must re-issue it (a withheld update is refused)")
    return desired
