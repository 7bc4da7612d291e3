"""The stage contract: a :class:`Frame` travels from the source through :class:`Stage` objects
to :class:`Sink` objects. What a stage finds goes into the frame's typed fields (``boxes``,
``lines``, ``candidates``...) for the stages after it; ``data`` holds what user stages add.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(eq=False)
class Frame:
    """One frame travelling through a pipeline.

    index: frame number at the source; image: HxWx3 uint8 BGR (None on the end-of-stream
    marker); pts: seconds into the stream; t_capture: ``time.perf_counter()`` when the source
    delivered it; data: what your own stages add; events: what sinks publish; timings:
    milliseconds per stage. The built-in stages fill the typed fields below (None until then).
    """

    index: int
    image: np.ndarray | None
    pts: float | None = None
    t_capture: float = field(default_factory=time.perf_counter)
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    final: bool = False  # the end-of-stream marker: carries the events stages emit when flushed
    path: str | None = None  # the file the frame came from (image folders)
    # resize: the frame at full resolution, and (x0, y0, scale) mapping ``image`` back onto it
    full: np.ndarray | None = None
    roi: tuple[int, int, float] | None = None
    # detect: (N,4,2) float32 text quads in full-frame pixels, reading order, and their scores
    boxes: np.ndarray | None = None
    det_scores: list[float] | None = None
    crops: list[np.ndarray] | None = None  # cls: each box's line cut out upright
    lines: list | None = None  # recognize: an OCRLine (box, text, score) per line read
    candidates: list | None = None  # container_read: the code candidates, read or skipped
    tracks: list[tuple[int, np.ndarray, str | None]] | None = None  # container_track: (id, box, code)

    @property
    def full_image(self) -> np.ndarray | None:
        """The frame at full resolution (a resize stage may have shrunk ``image``)."""
        return self.image if self.full is None else self.full

    def text_boxes(self) -> np.ndarray:
        """The detected quads, (0,4,2) when there are none."""
        return np.zeros((0, 4, 2), np.float32) if self.boxes is None else self.boxes


class Stage:
    """A step of a pipeline: ``process(frame) -> frame`` (or None to filter the frame out).

    ``finish(end)`` is called once with the end-of-stream marker: a stage holding state (a
    tracker) adds its last events there. ``open(pipeline)`` runs before the first frame, in
    the caller's thread (sessions are loaded there, not at import).
    """

    name = "stage"
    budget_share: float | None = None  # share of the frame interval (None: an equal part of what is left)
    budget_ms: float | None = None  # that share in ms, set by the pipeline before ``open``

    def open(self, pipeline) -> None:
        """Prepare to run; ``pipeline`` is the running :class:`~edgedeploy.pipelines.runtime.Pipeline`,
        whose ``stage(name)`` finds the other stages."""

    def process(self, frame: Frame) -> Frame | None:
        raise NotImplementedError

    def finish(self, end: Frame) -> Frame:
        return end

    def close(self) -> None:
        """Free what ``open`` took."""

    def speedups(self) -> list[str]:
        """The switches of this stage, not yet on, that would make it faster (for the budget report)."""
        return []


class Sink:
    """Where results go: ``write(frame)`` for every frame that passed all stages (and the
    end-of-stream marker, which carries the last events); ``close()`` returns a report."""

    name = "sink"

    def open(self) -> None:
        """Connect, open files."""

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def close(self) -> dict:
        return {}


class FunctionStage(Stage):
    """A plain function ``frame -> frame | None`` as a stage."""

    def __init__(self, fn: Callable[[Frame], Frame | None], name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "function")

    def process(self, frame: Frame) -> Frame | None:
        return self.fn(frame)
