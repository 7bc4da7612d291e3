"""Find the system DejaVu fonts that the generators render with, and open them by size."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

from edgedeploy.errors import UserError

# Where Debian/Ubuntu, Fedora/Arch and Alpine put the DejaVu TrueType files.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/dejavu-sans-fonts",
    "/usr/share/fonts/dejavu-serif-fonts",
    "/usr/share/fonts/dejavu-sans-mono-fonts",
    "/usr/local/share/fonts",
)

# Upright faces only: italics and ExtraLight make ground truth harder to read, not more real.
DOCUMENT_FACES = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansCondensed", "DejaVuSansCondensed-Bold",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerifCondensed", "DejaVuSansMono",
    "DejaVuSansMono-Bold",
)
# Container codes are painted in heavy sans lettering.
STENCIL_FACES = ("DejaVuSans-Bold", "DejaVuSansCondensed-Bold", "DejaVuSansMono-Bold")


@functools.cache
def _installed() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in FONT_DIRS:
        for path in sorted(Path(folder).glob("DejaVu*.ttf")):
            found.setdefault(path.stem, path)
    return found


def find_fonts(faces: tuple[str, ...] = DOCUMENT_FACES) -> list[Path]:
    """The files of those ``faces`` (file stems, e.g. ``"DejaVuSans-Bold"``) that are installed.

    Raises :class:`UserError` when none of them is, since nothing could be rendered.
    """
    installed = _installed()
    paths = [installed[face] for face in faces if face in installed]
    if not paths:
        raise UserError(
            f"no DejaVu font found (looked for {faces[0]} and others in {FONT_DIRS[0]} and "
            "other font folders); install fonts-dejavu-core"
        )
    return paths


@functools.lru_cache(maxsize=256)
def load_font(path: Path, size_px: int) -> ImageFont.FreeTypeFont:
    """The font at ``path`` with an em of ``size_px`` pixels (cached: opening costs ~1 ms)."""
    return ImageFont.truetype(str(path), int(size_px))
