"""Evaluation data made offline, deterministically from a seed, with its ground truth.

No data set can be downloaded, so accuracy is measured on images rendered here from the
system DejaVu fonts: document pages (line boxes and strings), pages laid out in paragraphs
(block boxes, for layout), pages turned by a multiple of
90 degrees, single text lines (upright or upside down; or with their string) and
container panels with ISO 6346 codes. Images are uint8 BGR arrays (OpenCV's convention).

    >>> from edgedeploy import datasets
    >>> pages = datasets.generate("pages", n=20, seed=0)
    >>> datasets.save(pages, "eval/pages"); pages = datasets.load("eval/pages")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgedeploy.datasets.containers import make_container_panels
from edgedeploy.datasets.documents import make_documents
from edgedeploy.datasets.lines import make_lines, make_rec_lines
from edgedeploy.datasets.orientation import make_orientation
from edgedeploy.datasets.pages import make_pages
from edgedeploy.datasets.samples import (ClassSample, ContainerSample, DocumentSample, LineSample,
                                         PageSample)
from edgedeploy.datasets.storage import load, save
from edgedeploy.errors import UserError, did_you_mean


@dataclass(frozen=True)
class Dataset:
    """One kind of generated data: how to make it, and what it is truth for."""

    make: Callable[[int, int], list]
    sample: type
    task: str
    description: str


DATASETS: dict[str, Dataset] = {
    "pages": Dataset(make_pages, PageSample, "text detection + recognition",
                     "640x640 document pages, 6-12 lines; truth: line boxes and strings"),
    "documents": Dataset(make_documents, DocumentSample, "layout",
                         "600x848 portrait pages: a title and paragraphs; truth: lines and blocks"),
    "orientation": Dataset(make_orientation, ClassSample, "document orientation",
                           "pages turned 0/90/180/270 degrees clockwise; truth: the angle"),
    "lines": Dataset(make_lines, ClassSample, "text-line orientation",
                     "48 px text lines, half turned upside down; truth: 0 or 180"),
    "rec-lines": Dataset(make_rec_lines, LineSample, "text recognition",
                         "48 px text lines; truth: the string"),
    "containers": Dataset(make_container_panels, ContainerSample, "container code reading",
                          "640x480 container panels; truth: ISO 6346 code and its boxes"),
}


def generate(name: str, n: int, seed: int = 0) -> list:
    """``n`` samples of the data set called ``name`` (a key of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}{did_you_mean(name, DATASETS)}; "
                        f"choose from {', '.join(DATASETS)}")
    return DATASETS[name].make(n, seed)


__all__ = ["DATASETS", "ClassSample", "ContainerSample", "Dataset", "DocumentSample", "LineSample",
           "PageSample", "generate", "load", "make_container_panels", "make_documents", "make_lines",
           "make_orientation", "make_pages", "make_rec_lines", "save"]
