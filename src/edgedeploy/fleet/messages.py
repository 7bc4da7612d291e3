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


def group_topic(group: str, kind: str = "desired") -> str:
    return f"{PREFIX}/groups/{group}/{kind}"


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


@dataclass(frozen=True, kw_only=True)
class Job:
    """A measurement the controller asks a device to make on the version of ``model`` it serves
    (``edgedeploy fleet bench --on``); answered on ``PREFIX/devices/ID/results``."""

    id: str
    model: str
    runs: int = 20
    engine: str | None = None
    time_budget_s: float = 10.0
    expires: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def seal(kind: str, payload: dict, key: Ed25519PrivateKey) -> bytes:
    """``payload`` under ``kind``, with its Ed25519 signature and the signer's key id."""
    return json.dumps({kind: payload, "key_id": key_id(key.public_key()),
                       "sig": base64.b64encode(key.sign(_canonical(payload))).decode()}).encode()


def unseal(kind: str, raw: bytes, trusted: list[Ed25519PublicKey]) -> dict:
    """The payload of a sealed ``kind`` message, or MessageRefused (malformed, untrusted key, bad signature)."""
    try:
        msg = json.loads(raw)
        payload, kid, sig = msg[kind], msg["key_id"], base64.b64decode(msg["sig"])
        if not isinstance(payload, dict):
            raise TypeError(f"{kind} is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageRefused(f"not a signed edgedeploy {kind} message ({exc})") from None
    key = next((k for k in trusted if key_id(k) == kid), None)
    if key is None:
        raise MessageRefused(f"{kind} {payload.get('seq', payload.get('id'))} is signed by key {kid}, which this device does not trust")
    try:
        key.verify(sig, _canonical(payload))
    except InvalidSignature:
        raise MessageRefused(f"{kind} {payload.get('seq', payload.get('id'))}: the signature does not verify (changed in transit)") from None
    return payload


def sign_desired(desired: Desired, key: Ed25519PrivateKey) -> bytes:
    """The MQTT payload: the desired state, its signature and the signer's key id."""
    return seal("desired", desired.to_dict(), key)


def open_desired(raw: bytes, trusted: list[Ed25519PublicKey], *, last_seq: int, now: float | None = None) -> Desired:
    """Verify a desired-state payload: trusted signer, sequence above ``last_seq``, not expired."""
    payload = unseal("desired", raw, trusted)
    try:
        desired = Desired(**payload)
    except TypeError as exc:
        raise MessageRefused(f"desired state is not a desired state ({exc})") from None
    if desired.seq <= last_seq:
        raise MessageRefused(f"desired state seq {desired.seq} is not above the last accepted ({last_seq}); "
                             "a replayed older state is refused")
    if desired.expires and (now or time.time()) > desired.expires:
        raise MessageRefused(f"desired state seq {desired.seq} expired at {time.ctime(desired.expires)}; "
                             "the controller must re-issue it (a withheld update is refused)")
    return desired


def open_job(raw: bytes, trusted: list[Ed25519PublicKey], *, done: set[str], now: float | None = None) -> Job:
    """Verify a job: trusted signer, not done before (replay), not expired."""
    payload = unseal("job", raw, trusted)
    try:
        job = Job(**payload)
    except TypeError as exc:
        raise MessageRefused(f"job is not a job ({exc})") from None
    if job.id in done:
        raise MessageRefused(f"job {job.id} was done already; a replayed job is refused")
    if not job.expires or (now or time.time()) > job.expires:
        raise MessageRefused(f"job {job.id} has expired; ask again")
    return job
