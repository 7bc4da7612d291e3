"""ISO 6346 freight-container codes: owner code (3 letters), category (U, J or Z), a 6-digit
serial number and a check digit, e.g. ``CSQU3054383``."""

from __future__ import annotations

import re
import string

import numpy as np

CATEGORIES = "UJZ"
_CODE = re.compile(r"[A-Z]{3}[UJZ][0-9]{7}")


def _letter_values() -> dict[str, int]:
    # Letters count from A=10 upwards, skipping 11, 22 and 33 (the multiples of 11).
    values, value = {}, 10
    for letter in string.ascii_uppercase:
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


_VALUES = {**_letter_values(), **{d: int(d) for d in string.digits}}


def check_digit(code10: str) -> int:
    """The check digit of the first 10 characters (owner, category, serial) of a code.

    Each character's value times ``2**position``, summed, modulo 11, modulo 10 (a
    remainder of 10 gives 0).
    """
    if len(code10) != 10 or any(c not in _VALUES for c in code10):
        raise ValueError(f"expected 10 characters of A-Z and 0-9, got {code10!r}")
    total = sum(_VALUES[c] << i for i, c in enumerate(code10))
    return total % 11 % 10


def is_valid(code: str) -> bool:
    """Whether ``code`` (spaces ignored, any case) is a well-formed code whose check digit holds."""
    code = code.replace(" ", "").upper()
    return bool(_CODE.fullmatch(code)) and check_digit(code[:10]) == int(code[10])


def random_code(rng: np.random.Generator) -> str:
    """A valid code: random owner letters, a category, a serial and its check digit."""
    owner = "".join(string.ascii_uppercase[i] for i in rng.integers(26, size=3))
    category = CATEGORIES[int(rng.choice(3, p=[0.9, 0.05, 0.05]))]
    serial = f"{int(rng.integers(0, 1_000_000)):06d}"
    head = owner + category + serial
    return head + str(check_digit(head))
