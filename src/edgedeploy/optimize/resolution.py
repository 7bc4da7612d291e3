"""Doing less work: the smallest input size at which a detector's task metric stays within budget.

For a model with dynamic spatial inputs (PP-OCR text detection), the input resolution is a
setting, not a given: the task resizes each page before the model. :func:`search` runs the
task at each candidate size on the same generated pages (``edgedeploy.datasets``, ground truth
known), scores it with the task's metric, times the model at that size, and picks the smallest
size whose metric is within ``max_drop_points`` of the reference size's. The speed-up it adds
is reported apart from any same-size speed-up (precision, engine), since it changes the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

SIZES = (480, 544, 640, 736, 960)  # multiples of 32 around PP-OCR's defaults (736 min side; 960 max side)


@dataclass
class SizeResult:
    size: int
    metric: float  # 0-1
    latency_ms: float  # model p50 at 1x3xSxS
    interval: tuple[float, float]


@dataclass
class ResolutionSearch:
    task: str
    metric: str
    reference: int
    chosen: int
    max_drop_points: float
    rows: list[SizeResult]
    data: str

    @property
    def speedup(self) -> float:
        """Model latency at the reference size / at the chosen size."""
        by = {r.size: r for r in self.rows}
        return by[self.reference].latency_ms / by[self.chosen].latency_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": round(self.speedup, 3)}


SMALLEST_TEXT = (8, 12)  # px: the smallest text edgedeploy.datasets.pages renders (its floor is 8 px)


def search(open_session: Callable[[], object], *, like: str = "ppocrv6-det", sizes=SIZES, reference: int = 736,
           max_drop_points: float = 0.5, n: int = 10, seed: int = 0, runs: int = 10,
           text_px: tuple[int, int] = SMALLEST_TEXT) -> ResolutionSearch:
    """Score and time the detector ``open_session()`` opens (a Session on the model, any engine) at each size.

    Pages: ``n`` generated 640x640 pages with text of ``text_px`` (min, max) px — by default the smallest
    text the generator makes, where a lower resolution loses lines first. ``reference``: the size the task
    runs at by default; the chosen size is the smallest whose metric is at least the reference's minus
    ``max_drop_points`` (percentage points)."""
    from edgedeploy import tasks, zoo
    from edgedeploy.datasets.pages import make_pages
    from edgedeploy.evaluation.runner import TASKS

    spec = TASKS["det"]
    samples = make_pages(n, seed, text_px=tuple(text_px))
    data_desc = f"generated 640x640 pages n={n} seed={seed}, text {text_px[0]}-{text_px[1]} px"
    short_side = min(samples[0].image.shape[:2])
    entry = zoo.entry(like)
    session = open_session()
    rows = []
    try:
        for size in sorted(set(sizes) | {reference}):
            # the page's short side to `size`: scaled up with "min", down with "max" (pages are square)
            det = tasks.build("det", session, entry, limit_side_len=size,
                              limit_type="min" if size >= short_side else "max", max_side_len=max(size, 2000))
            preds = [det(s.image).boxes for s in samples]
            value, _ = spec.score(preds, samples)
            x = np.zeros((1, 3, size, size), np.float32)
            timing = session.time({session.inputs[0].name: x}, runs=runs)
            rows.append(SizeResult(size, float(value), timing.stat("p50"), timing.interval("p50")))
    finally:
        session.release()
    ref = next(r for r in rows if r.size == reference)
    within = [r for r in rows if 100 * (ref.metric - r.metric) <= max_drop_points + 1e-9]
    chosen = min(within, key=lambda r: r.size).size
    return ResolutionSearch(task="det", metric=spec.metric, reference=reference, chosen=chosen,
                            max_drop_points=max_drop_points, rows=rows, data=data_desc)
