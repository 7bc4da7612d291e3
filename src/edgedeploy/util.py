"""Small helpers shared across the package."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgedeploy.errors import UserError
from edgedeploy.fsio import atomic_write


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["atomic_write", "image_shape", "parse_shape", "sha256_file"]  # atomic_write: from edgedeploy.fsio


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """'1x3x640x640' → (1, 3, 640, 640); '640x480' → (640, 480) (H x W); '224' → (224, 224); '' → None."""
    if not text:
        return None
    try:
        dims = tuple(int(d) for d in str(text).lower().replace(",", "x").split("x"))
    except ValueError:
        raise UserError(f"--shape {text!r} is not a shape; expected HxW (e.g. 640x640) or a full shape "
                        "(e.g. 1x3x640x640)") from None
    if any(d < 1 for d in dims):
        raise UserError(f"--shape {text!r} has a dimension below 1; every dimension must be at least 1")
    return dims * 2 if len(dims) == 1 else dims


def image_shape(dims: tuple[int, ...] | None, declared: tuple[int | None, ...]) -> tuple[int, ...] | None:
    """Complete an HxW ``dims`` to N x C x H x W for a 4-D image input (N = 1, C as declared or 3)."""
    if dims is not None and len(dims) == 2 and len(declared) == 4:
        return (1, declared[1] or 3, *dims)
    return dims
