"""The worker wire format: arrays and headers round-trip; another version is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from edgedeploy.targets import wire


def test_round_trip_and_version_check():
    buf = io.BytesIO()
    wire.send(buf, {"op": "run"}, {"a0": np.arange(6, dtype=np.float32).reshape(2, 3)})
    wire.send(buf, {"op": "stop"})
    buf.seek(0)
    header, arrays = wire.recv(buf)
    assert header["op"] == "run" and header["v"] == wire.VERSION
    np.testing.assert_array_equal(arrays["a0"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert wire.recv(buf) == ({"op": "stop", "v": wire.VERSION}, {})
    with pytest.raises(wire.WireError, match="closed"):
        wire.recv(buf)
    with pytest.raises(wire.WireError, match="wire version 99, expected 1"):
        wire.recv(io.BytesIO(b'{"v": 99}\n'))
