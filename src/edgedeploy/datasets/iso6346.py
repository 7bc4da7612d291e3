"""ISO 6346 freight-container codes: owner code (3 letters), category (U, J or Z), a 6-digit
serial number and a check digit, e.g. ``CSQU3054383``: the check digit, random valid codes, and
the one parser of codes in OCR output (used by the gate pipeline and the evaluation alike)."""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass, field

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


# --- parsing a code out of what a recogniser read ------------------------------------------------

# Look-alikes a recogniser confuses, used only to put a letter in a letter's place and a digit
# in a digit's place; the result is accepted only when the check digit confirms it.
DIGIT_FOR = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2", "G": "6"}
LETTER_FOR = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G"}


# --- ISO 6346 parsing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CodeRead:
    """A parsed read. ``code``: the valid code (None when none validates); ``raw``: the
    letters and digits read; ``corrected``: positions in ``code`` changed from what was read;
    ``reason``: why no valid code was found."""

    code: str | None
    raw: str
    corrected: tuple[int, ...] = ()
    reason: str = ""
    # The check digit weighed by the recogniser's likelihood (:func:`check_digit_evidence`):
    # for each owner + serial the read may hold, the log-posterior of the 10 digits after it.
    evidence: tuple[tuple[str, np.ndarray], ...] = field(default=(), compare=False)

    @property
    def valid(self) -> bool:
        return self.code is not None


def coerce_window(window: str) -> tuple[str, tuple[int, ...]] | None:
    """Letters in the owner/category slots, digits in the serial/check slots; None if impossible."""
    out, changed = [], []
    for i, c in enumerate(window):
        want_letter = i < 4
        if want_letter and not c.isalpha():
            c2 = LETTER_FOR.get(c)
        elif not want_letter and not c.isdigit():
            c2 = DIGIT_FOR.get(c)
        else:
            c2 = c
        if c2 is None:
            return None
        if c2 != c:
            changed.append(i)
        out.append(c2)
    if out[3] not in CATEGORIES:
        return None
    return "".join(out), tuple(changed)


def parse_container_code(text: str) -> CodeRead:
    """Find an ISO 6346 code in ``text`` (spaces, punctuation and case ignored).

    Every 11-character window is coerced (O→0, I→1, B→8... in digit slots, and back in letter
    slots) and kept only if its check digit holds; of several, the one needing fewest changes
    wins. A read whose check digit fails is never "corrected" into some other valid code.
    """
    # NFKC: the circled digits (⑧) a recogniser reads for a check digit painted in a frame,
    # and full-width letters, become plain ASCII.
    raw = re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", text).upper())
    if len(raw) < 11:
        return CodeRead(None, raw, reason=f"{len(raw)} letters/digits read; a code has 11")
    best, reason = None, "no owner code + U/J/Z + 7 digits in the read"
    for start in range(len(raw) - 10):
        coerced = coerce_window(raw[start:start + 11])
        if coerced is None:
            continue
        code, changed = coerced
        if check_digit(code[:10]) != int(code[10]):
            reason = f"check digit of {code} fails (expected {check_digit(code[:10])})"
            continue
        if best is None or len(changed) < len(best[1]):
            best = (code, changed)
    if best is None:
        return CodeRead(None, raw, reason=reason)
    return CodeRead(best[0], raw, best[1])


def prefixes(raw: str) -> set[str]:
    """The owner + category + serial (10 characters, coerced as in :func:`parse_container_code`)
    that ``raw`` may hold: what a read that missed the check digit still says."""
    return {c[0] for start in range(len(raw) - 9) if (c := coerce_window(raw[start:start + 10]))}


def with_check_digit(raw: str, digit: str) -> CodeRead:
    """A code from ``raw`` (owner, category and serial read, the check digit missed or
    garbled) and a check digit read on its own; valid only if that digit confirms it.

    Every 10-character window of ``raw`` is coerced as in :func:`parse_container_code` and
    completed with ``digit``; the window needing fewest changes among those that validate wins.
    """
    digit = DIGIT_FOR.get(digit, digit)
    if len(digit) != 1 or not digit.isdigit():
        return CodeRead(None, raw, reason=f"check digit read alone as {digit!r}")
    best = None
    for start in range(len(raw) - 9):
        coerced = coerce_window(raw[start:start + 10] + digit)
        if coerced and check_digit(coerced[0][:10]) == int(digit) and (best is None or len(coerced[1]) < len(best[1])):
            best = coerced
    if best is None:
        return CodeRead(None, raw, reason=f"check digit {digit} read alone confirms no code in {raw}")
    return CodeRead(best[0], raw, best[1])
