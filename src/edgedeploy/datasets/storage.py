"""Save samples as PNG images plus one ``labels.json``; load them back.

``labels.json`` is written last, through a temporary file and ``os.replace``, so a folder
either has a complete data set or none that :func:`load` accepts.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np

from edgedeploy.datasets.samples import SAMPLE_TYPES
from edgedeploy.errors import UserError

LABELS_FILE = "labels.json"
BOX_FIELDS = ("boxes", "blocks")  # lists of (k, 2) polygons
FORMAT_VERSION = 1


def _write_atomic(path: Path, data: bytes) -> None:
    from edgedeploy.fsio import atomic_write

    with atomic_write(path) as f:
        f.write(data)


def save(samples: list, directory: str | os.PathLike) -> Path:
    """Write ``samples`` (all of one kind) to ``directory``: ``00000.png``... and labels.json."""
    directory = Path(directory)
    kinds = {type(s).__name__ for s in samples}
    if len(kinds) > 1 or not kinds <= SAMPLE_TYPES.keys():
        raise UserError(f"can save a list of one sample type from edgedeploy.datasets, got "
                        f"{sorted(kinds)}")
    directory.mkdir(parents=True, exist_ok=True)
    records = []
    for i, sample in enumerate(samples):
        name = f"{i:05d}.png"
        ok, png = cv2.imencode(".png", sample.image)
        if not ok:
            raise ValueError(f"OpenCV could not encode sample {i} as PNG")
        _write_atomic(directory / name, png.tobytes())
        record = {"image": name}
        for field in dataclasses.fields(sample):
            value = getattr(sample, field.name)
            if field.name in BOX_FIELDS:
                value = [np.asarray(box, dtype=float).tolist() for box in value]
            if field.name != "image":
                record[field.name] = value
        records.append(record)
    labels = {"format": FORMAT_VERSION, "kind": kinds.pop() if kinds else None,
              "samples": records}
    _write_atomic(directory / LABELS_FILE, json.dumps(labels, indent=1).encode())
    return directory


def load(directory: str | os.PathLike) -> list:
    """The samples that :func:`save` wrote to ``directory``, images as uint8 BGR arrays."""
    directory = Path(directory)
    labels_path = directory / LABELS_FILE
    if not labels_path.is_file():
        raise UserError(f"no data set in {directory}: {LABELS_FILE} is missing; write one "
                        "with edgedeploy.datasets.save(generate(name, n, seed), folder)")
    try:
        labels = json.loads(labels_path.read_text())
        kind, records = labels["kind"], labels["samples"]
        if labels.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {labels.get('format')!r}, expected {FORMAT_VERSION}")
        if records and kind not in SAMPLE_TYPES:
            raise ValueError(f"unknown sample kind {kind!r}")
        samples = [_from_record(SAMPLE_TYPES[kind], record, directory) for record in records]
    except UserError:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UserError(f"malformed data set in {directory} ({type(exc).__name__}: {exc}); "
                        "write it again with edgedeploy.datasets.save") from None
    return samples


def _from_record(cls, record: dict, directory: Path):
    image = cv2.imread(str(directory / record["image"]), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"data set in {directory} lists {record['image']}, which is missing "
                        "or not an image; write the data set again")
    fields = {f.name for f in dataclasses.fields(cls)} - {"image"}
    values = {name: record[name] for name in fields}
    for name in BOX_FIELDS:
        if name in values:
            values[name] = [np.asarray(box, dtype=np.float32).reshape(-1, 2) for box in values[name]]
    return cls(image=image, **values)
