"""units: the one parser of "10ms", "0.5s", "512MB", "1GiB", "5W"."""

from __future__ import annotations

import re

import pytest

from edgedeploy import units
from edgedeploy.errors import UserError


@pytest.mark.parametrize("text, kind, value", [
    ("10ms", "duration", 10.0), ("0.5s", "duration", 500.0), ("250us", "duration", 0.25), ("10 MS", "duration", 10.0),
    ("512MB", "size", 512e6), ("1GiB", "size", 2**30), ("64KiB", "size", 65536),
    ("5W", "power", 5.0), ("800mW", "power", 0.8), ("5w", "power", 5.0),
])
def test_parses(text, kind, value):
    assert units.parse_quantity(text, kind) == pytest.approx(value)


@pytest.mark.parametrize("value, kind, message", [
    ("10", "duration", "has no unit"), (10, "duration", "has no unit"),
    ("512mb", "size", "did you mean 'MB'? units are case-sensitive"),
    ("10 parsecs", "duration", "not a duration unit"), ("-5W", "power", "must be positive"),
    ("0ms", "duration", "must be positive"), ("fast", "duration", "is not a duration"), (True, "power", "not a power"),
])
def test_refuses_with_a_reason(value, kind, message):
    with pytest.raises(UserError, match=re.escape(message)):
        units.parse_quantity(value, kind, field="x")


def test_formats():
    assert units.fmt_ms(12.34) == "12.3 ms" and units.fmt_ms(0.25) == "250 µs" and units.fmt_ms(1500) == "1.50 s"
    assert units.fmt_bytes(512 * 2**20) == "512.0 MiB" and units.fmt_watts(0.8) == "800 mW"
