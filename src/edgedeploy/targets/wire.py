"""The versioned wire format between edgedeploy and its worker processes (emulated aarch64, RKNN venv).

A message is one JSON line (the header, always carrying ``"v": VERSION``) and, when the header
says ``"npz": n``, n bytes of a numpy ``.npz`` holding named arrays. Both directions use it.
This module needs only the standard library and numpy: the workers import it from their own
interpreter (the arm64 root's python, the RKNN venv's python), which has no edgedeploy installed.
"""

from __future__ import annotations

import io
import json
from typing import BinaryIO

import numpy as np

VERSION = 1


class WireError(RuntimeError):
    """The other side closed the stream or spoke another version."""


def send(stream: BinaryIO, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    payload = b""
    if arrays is not None:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        payload = buf.getvalue()
    head = {**header, "v": VERSION, **({"npz": len(payload)} if arrays is not None else {})}
    stream.write(json.dumps(head).encode() + b"\n" + payload)
    stream.flush()


def recv(stream: BinaryIO) -> tuple[dict, dict[str, np.ndarray]]:
    line = stream.readline()
    if not line:
        raise WireError("the worker closed its stream")
    header = json.loads(line)
    if header.get("v") != VERSION:
        raise WireError(f"wire version {header.get('v')!r}, expected {VERSION}")
    arrays: dict[str, np.ndarray] = {}
    n = header.get("npz")
    if n is not None:
        data = stream.read(n)
        if len(data) != n:
            raise WireError(f"the worker sent {len(data)} of {n} bytes")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    return header, arrays
