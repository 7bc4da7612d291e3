"""Pieces shared by the generators: seeded streams, random text, noise, rotations."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from edgedeploy.errors import UserError

WORDS = """
the of and to in is for on that by with from at as order total date invoice number page
report model device memory speed power battery camera sensor edge engine board result test
value input output image frame video time delay local remote server client update version
system network signal cable port north south east west river bridge station harbour gate
container vessel cargo crane truck driver shift check record status ready done open closed
green blue red white black orange small large quick slow first second third last next
monday tuesday friday march april june october winter summer morning evening daily weekly
price amount paid due net gross weight length width height volume unit box pallet item
name address street city country phone email office account customer supplier product code
please note thank you welcome contact support service manual guide chapter section table
figure summary method data sample measure accuracy latency throughput batch thread queue
""".split()

# Letters for made-up codes: no I or O, which readers (and recognisers) confuse with 1 and 0.
CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def check_size(n: int, seed: int) -> None:
    """Reject what no generator can honour, before any work is done."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise UserError(f"n must be a whole number >= 0, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0, got {seed!r}")


def sample_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The random stream of sample ``index``: independent of how many samples are made."""
    salt = int.from_bytes(stream.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng(np.random.SeedSequence([seed, salt, index]))


def _token(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.78:
        word = WORDS[rng.integers(len(WORDS))]
        style = rng.random()
        word = word.capitalize() if style < 0.15 else word.upper() if style < 0.18 else word
        punct = rng.random()
        return word + ("," if punct < 0.05 else "." if punct < 0.09 else ":" if punct < 0.11 else "")
    if kind < 0.88:
        return str(int(rng.integers(1, 10_000)))
    if kind < 0.92:
        return f"{rng.integers(1, 1000)}.{rng.integers(0, 100):02d}"
    if kind < 0.95:
        return f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
    if kind < 0.97:
        return f"20{rng.integers(10, 30)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    letters = "".join(CODE_LETTERS[i] for i in rng.integers(len(CODE_LETTERS), size=2))
    return f"{letters}-{rng.integers(100, 10_000)}"


def random_line(rng: np.random.Generator, font, max_width: float) -> str:
    """Words and numbers, single-spaced, as wide as a random share of ``max_width`` pixels."""
    target = max_width * rng.uniform(0.35, 1.0)
    first = _token(rng)
    text = first[0].upper() + first[1:]
    while True:
        candidate = f"{text} {_token(rng)}"
        if font.getlength(candidate) > target:
            # Never return a line wider than allowed, even for a single long token.
            while font.getlength(text) > max_width and " " in text:
                text = text.rsplit(" ", 1)[0]
            return text
        text = candidate


def pil_to_bgr(image: Image.Image) -> np.ndarray:
    """A PIL RGB or L image as a contiguous uint8 BGR array."""
    array = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(array[:, :, ::-1])


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """``image`` plus Gaussian noise of ``sigma`` grey levels, clipped back to uint8."""
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def rotate_small(image: np.ndarray, angle_deg: float, boxes: list[np.ndarray], *,
                 border: tuple[int, ...] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Turn ``image`` by ``angle_deg`` about its centre (positive = counter-clockwise, as
    cv2), keeping its size, and move the ``boxes`` with it. ``border`` is the fill colour;
    None reflects the image."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    mode = cv2.BORDER_REFLECT101 if border is None else cv2.BORDER_CONSTANT
    turned = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=mode,
                            borderValue=border or 0)
    moved = [(box @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32) for box in boxes]
    return turned, moved


def rect_box(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    """The axis-aligned rectangle as a float32 (4, 2) quadrilateral, clockwise from top-left."""
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)


def rotate_clockwise(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` turned ``degrees`` (0, 90, 180 or 270) clockwise, as cv2.ROTATE_90_CLOCKWISE."""
    if degrees not in (0, 90, 180, 270):
        raise UserError(f"rotation must be 0, 90, 180 or 270 degrees, got {degrees!r}")
    # np.rot90 turns counter-clockwise for positive k.
    return np.ascontiguousarray(np.rot90(image, k=-(degrees // 90)))


def shuffled_slot(seed: int, stream: str, index: int, block: int) -> int:
    """Sample ``index``'s slot after shuffling within blocks of ``block`` samples.

    Labels given by slot (``slot % 4`` ...) are then balanced in every whole block and in
    random order, yet sample ``index`` gets the same label whatever the number of samples.
    """
    start = index - index % block
    order = sample_rng(seed, stream + "-b", start // block).permutation(block)
    return start + int(order[index % block])
