"""Units, one meaning: MB = 10^6 bytes, MiB = 2^20, one formatter per unit (edgedeploy.units)."""

from __future__ import annotations

import pytest

from edgedeploy import units
from edgedeploy.cli import output


@pytest.mark.parametrize("text, printed", [("256MB", "244.1 MiB"), ("256MiB", "256.0 MiB"), ("1GB", "953.7 MiB"),
                                           ("1GiB", "1.0 GiB"), ("1000B", "1000 B"), ("2KiB", "2.0 KiB")])
def test_a_size_prints_in_binary_units_with_binary_labels(text, printed):
    assert units.fmt_bytes(units.parse_bytes(text)) == printed


def test_mb_is_decimal_and_mib_binary():
    assert units.parse_bytes("1MB") == 10**6 and units.parse_bytes("1MiB") == 2**20


def test_the_cli_has_no_formatter_of_its_own():
    assert output.fmt_bytes is units.fmt_bytes
    assert output.fmt_ms(12.345) == units.fmt_ms(12.345, bare=True) == "12.3"
    assert units.fmt_ms(12.345) == "12.3 ms" and units.fmt_ms(0.25) == "250 µs"
    assert not hasattr(units, "fmt_flops")


def test_a_256MB_memory_budget_prints_as_244_MiB():
    """What `serve --memory-budget 256MB` prints (cli/serve.py formats it with output.fmt_bytes)."""
    budget = units.parse_bytes("256MB", field="--memory-budget")
    assert budget == 256_000_000 and output.fmt_bytes(budget) == "244.1 MiB"
