"""Quantities with units, parsed and formatted in one place: durations, sizes, power.

Canonical units: durations in milliseconds, sizes in bytes, power in watts.

>>> parse_duration_ms("10ms"), parse_duration_ms("0.5s"), parse_duration_ms("250us")
(10.0, 500.0, 0.25)
>>> parse_bytes("512MB"), parse_bytes("1GiB")
(512000000, 1073741824)
>>> parse_watts("5W"), parse_watts("800mW")
(5.0, 0.8)

Sizes follow SI/IEC strictly: ``MB`` is 10^6 bytes and ``MiB`` is 2^20, so a figure in a
config always means the same number of bytes; :func:`fmt_bytes` prints binary units (MiB), so
``parse_bytes("256MB")`` prints as "244.1 MiB", never as "244.1 MB". Every size, duration and power
printed anywhere goes through the one formatter here for its unit.
A number without a unit is refused: ``10`` could be ms or s, and the message says so.
"""

from __future__ import annotations

import re

from edgedeploy.errors import UserError, did_you_mean

_DURATION = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "sec": 1e3, "min": 60e3}
_SIZE = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_POWER = {"mW": 1e-3, "W": 1.0, "kW": 1e3}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-zµ]*)\s*$")

KINDS = {"duration": (_DURATION, "10ms, 0.5s or 250us"), "size": (_SIZE, "512MB, 1GiB or 64KiB"),
         "power": (_POWER, "5W or 800mW")}


def parse_quantity(value, kind: str, *, field: str = "value") -> float:
    """``value`` ("10ms", "512MB", "5W") in the canonical unit of ``kind`` (ms, bytes, W).

    Raises :class:`UserError` naming ``field`` for a missing or unknown unit, a value that is
    not a number, or one that is not positive.
    """
    units, example = KINDS[kind]
    if isinstance(value, bool) or value is None:
        raise UserError(f"{field}: {value!r} is not a {kind}; expected e.g. {example}")
    if isinstance(value, (int, float)):
        raise UserError(f"{field}: {value!r} has no unit; write it with one, e.g. {example}")
    m = _NUMBER.match(str(value))
    if not m:
        raise UserError(f"{field}: {value!r} is not a {kind}; expected a number and a unit, e.g. {example}")
    number, unit = float(m.group(1)), m.group(2)
    if not unit:
        raise UserError(f"{field}: {value!r} has no unit; write it with one, e.g. {example}")
    factor = units.get(unit)
    if factor is None and kind == "duration":  # "MS", "Sec": case carries no meaning here
        factor = {u.lower(): f for u, f in units.items()}.get(unit.lower())
    if factor is None and unit == "w":
        factor = 1.0
    if factor is None:
        same = [u for u in units if u.lower() == unit.lower()]
        hint = f" (did you mean {same[0]!r}? units are case-sensitive)" if same else did_you_mean(unit, units)
        raise UserError(f"{field}: unit {unit!r} in {value!r} is not a {kind} unit{hint}; "
                        f"expected one of {', '.join(units)} (e.g. {example})")
    result = number * factor
    if not result > 0:
        raise UserError(f"{field}: {value!r} must be positive")
    return result


def parse_duration_ms(value, *, field: str = "duration") -> float:
    """A duration in milliseconds: "10ms" → 10.0, "0.5s" → 500.0."""
    return parse_quantity(value, "duration", field=field)


def parse_bytes(value, *, field: str = "size") -> int:
    """A size in bytes: "512MB" → 512_000_000, "1GiB" → 1_073_741_824."""
    return int(round(parse_quantity(value, "size", field=field)))


def parse_watts(value, *, field: str = "power") -> float:
    """Power in watts: "5W" → 5.0, "800mW" → 0.8."""
    return parse_quantity(value, "power", field=field)


def fmt_ms(ms: float | None, *, bare: bool = False) -> str:
    """12.3 → "12.3 ms", 0.25 → "250 µs", 1500 → "1.50 s".

    ``bare``: the number of milliseconds alone, for a table column headed "ms" (12.3 → "12.3",
    0.25 → "0.25").
    """
    if ms is None:
        return "-"
    if bare:
        return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def fmt_bytes(n: float | None) -> str:
    """Binary units: 1536 → "1.5 KiB", 536870912 → "512.0 MiB"."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_watts(w: float | None) -> str:
    if w is None:
        return "-"
    return f"{w * 1000:.0f} mW" if w < 1 else f"{w:.1f} W"
