"""Reading container codes in one frame: detected text boxes grouped into code candidates
(a code is painted on one line, or owner over serial + check digit), each read by the
recogniser on full-resolution crops, with a second chance for a check digit painted in a frame
(:mod:`~edgedeploy.pipelines.gate.check_digit`). Candidates a confirmed track already covers
are not read again (the tracker fills in their position).
"""

from __future__ import annotations

import dataclasses
import time
import unicodedata
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgedeploy.datasets.iso6346 import CodeRead, check_digit, parse_container_code, with_check_digit
from edgedeploy.errors import UserError
from edgedeploy.pipelines.gate.check_digit import CheckDigitScorer, check_digit_crop, read_by_likelihood, remove_frames
from edgedeploy.pipelines.models import model_speedups
from edgedeploy.pipelines.ocr import load_task
from edgedeploy.pipelines.stage import Frame, Stage
from edgedeploy.tasks.common import as_bgr

# --- grouping detected lines into code candidates -----------------------------------------------

def _rects(quads: np.ndarray) -> np.ndarray:
    quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    return np.concatenate([quads.min(1), quads.max(1)], axis=1) if len(quads) else np.zeros((0, 4), np.float32)


def group_lines(quads: np.ndarray) -> list[list[np.ndarray]]:
    """Detected text boxes → code candidates, each a list of rows (x1, y1, x2, y2) top to bottom.

    Boxes on one row (vertical overlap ≥ half the lower one, gap < 1.5 heights) are merged
    into a row; rows stacked closely (gap < 1 height, overlapping horizontally or left-aligned)
    form one candidate: a code is painted on one line or as owner over serial + check digit.
    """
    rects = sorted(_rects(quads).tolist(), key=lambda r: r[0])
    rows: list[list[float]] = []
    for r in rects:
        for row in rows:
            h = min(r[3] - r[1], row[3] - row[1])
            overlap = min(r[3], row[3]) - max(r[1], row[1])
            if overlap >= 0.5 * h and r[0] - row[2] < 1.5 * h:
                row[:] = [min(row[0], r[0]), min(row[1], r[1]), max(row[2], r[2]), max(row[3], r[3])]
                break
        else:
            rows.append(list(r))
    rows.sort(key=lambda r: r[1])
    groups: list[list[list[float]]] = []
    for row in rows:
        for group in groups:
            last = group[-1]
            h = min(row[3] - row[1], last[3] - last[1])
            gap = row[1] - last[3]
            overlaps = min(row[2], last[2]) > max(row[0], last[0]) or abs(row[0] - last[0]) < h
            if -0.5 * h < gap < 1.0 * h and overlaps and len(group) < 2:
                group.append(row)
                break
        else:
            groups.append([row])
    return [[np.array(r, np.float32) for r in g] for g in groups]


def _union(rows: list[np.ndarray]) -> np.ndarray:
    arr = np.stack(rows)
    return np.concatenate([arr[:, :2].min(0), arr[:, 2:].max(0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


@dataclass
class Candidate:
    """A possible code in one frame: its box (x1, y1, x2, y2), rows, what was read, and whether
    reading was skipped because a confirmed track already covers it."""

    box: np.ndarray
    rows: list[np.ndarray]
    text: str = ""
    score: float = 0.0
    read: CodeRead | None = None
    skipped: bool = False


class ReadStage(Stage):
    """Group detected lines into candidates and read them (CTC rec on full-resolution crops).

    extend: the crop of a candidate's last row is widened to the right by this many row
    heights, to take in a check digit painted in a frame, which a detector on a downscaled
    frame often misses (the rows above it, an owner code, are not: widened, they take in the
    end of the serial below them, read as part of the owner code).
    min_height / max_height: rows shorter (px) or taller (share of the frame height) are ignored.
    edge: candidates within this many pixels (or 0.3 row heights) of the left or right edge
    are cut off by it: not read.
    retry_chars: a read of at least this many letters/digits that does not validate is weighed
    again: first its check digit by the recogniser's likelihood on the same line
    (:class:`CheckDigitScorer`, accepted ``digit_margin`` log-odds ahead of the next digit; no
    new inference), then, unless that likelihood reads another digit as surely, its check
    digit is read alone (:func:`check_digit_crop`, :func:`with_check_digit`). A recogniser
    whose probabilities are not exposed reads the rows once more with :func:`remove_frames`
    instead of the likelihood (a framed check digit is the usual culprit).
    tracker: the name of the tracker stage to ask which candidates are confirmed (None: read all).

    What keeps reading within its share of the frame interval, each switchable (the benchmark
    measures each on and off): ``skip_converged`` (do not read candidates a confirmed track
    covers); ``batch_crops`` (the crops of one frame that pad to one width, ``width_step`` px,
    go to the recogniser in one call: each crop's input, so its output, is what it would be
    alone); ``every`` (read on every n-th frame this stage sees: a container is in view for
    dozens of frames and needs ``confirm_votes`` reads; the frames between still give the
    tracker its boxes; 0: as often as the stage's budget allows, see :meth:`_pace`).
    ``engine``/``reduced_precision``: see :mod:`edgedeploy.pipelines.models`.
    """

    PACE_FRAMES, MAX_EVERY = 25, 4  # every=0: judged over this many frames; read at least every 4th

    def __init__(self, *, model: str = "ppocrv6-rec", path: str | None = None, engine: str = "auto",
                 threads: int | None = 1, extend: float = 1.5, pad: float = 0.15, min_height: float = 8.0,
                 max_height: float = 0.25, edge: float = 2.0, retry_chars: int = 9, digit_margin: float = 2.0,
                 tracker: str | None = "track", reduced_precision: bool = True, skip_converged: bool = True,
                 batch_crops: bool = True, every: int = 1, width_step: int = 32, name: str = "read"):
        if every < 0 or width_step < 1:
            raise UserError(f"every = {every}, width_step = {width_step}: expected every >= 0 (0: by the budget), "
                            "width_step >= 1")
        self.model, self.path, self.engine, self.threads = model, path, engine, threads
        self.reduced_precision, self.skip_converged, self.batch_crops = reduced_precision, skip_converged, batch_crops
        self.every, self.width_step, self.opened, self._seen = every, width_step, None, 0
        self.period, self._times = max(every, 1), deque(maxlen=self.PACE_FRAMES)  # read every period-th frame
        self.extend, self.pad, self.min_height, self.tracker_name, self.name = extend, pad, min_height, tracker, name
        self.max_height = max_height
        self.edge, self.retry_chars, self.digit_margin = edge, retry_chars, digit_margin
        self.rec, self.tracker, self.scorer = None, None, None
        self.reads = self.skipped = self.calls = 0

    budget_share = 0.35

    def speedups(self) -> list[str]:
        out = model_speedups(self)
        out += [] if self.skip_converged else ["skip_converged: true"]
        out += [] if self.batch_crops else ["batch_crops: true"]
        return out + (["every: 0 (by the budget)"] if self.every == 1 else [])

    def _pace(self, ms: float) -> None:
        """``every=0``: after each ``PACE_FRAMES`` frames, read less often (every 2nd, 3rd, up to
        ``MAX_EVERY``-th frame) while the stage's mean time a frame is over its budget (its share of
        the frame interval, ``budget_ms``, set by the pipeline), more often again under half of it."""
        self._times.append(ms)
        if self.every or self.budget_ms is None or self._seen % self.PACE_FRAMES:
            return
        mean = sum(self._times) / len(self._times)
        if mean > self.budget_ms and self.period < self.MAX_EVERY:
            self.period += 1
        elif mean < self.budget_ms / 2 and self.period > 1:
            self.period -= 1

    def open(self, pipeline) -> None:
        if self.rec is None:
            self.rec = load_task("rec", self.model, stage=self, path=self.path, engine=self.engine,
                                 threads=self.threads, reduced_precision=self.reduced_precision, pipeline=pipeline,
                                 width_step=self.width_step)
            self._warm_up()
        if self.scorer is None and hasattr(self.rec, "infer") and hasattr(self.rec, "decode"):
            try:
                self.scorer = CheckDigitScorer(self.rec.decode.characters)
            except ValueError:  # a recogniser without digits or a space: no likelihood to weigh
                self.scorer = None
        self.tracker = pipeline.stage(self.tracker_name) if self.tracker_name and pipeline is not None else None

    def _warm_up(self, widths: int = 12, batch: int = 2) -> None:
        """Run the recogniser once at each input shape it will mostly see (the first ``widths``
        padded widths, 1 to ``batch`` crops): an engine that prepares itself per input shape
        (OpenVINO) does so now, not on the frame that first brings a new container into view."""
        o = self.rec.options
        if o.width_step < 16:  # too many widths to prepare them all
            return
        for width in range(o.min_width, min(o.max_width, o.min_width + widths * o.width_step), o.width_step):
            for n in range(1, batch + 1):
                self.rec.infer(np.zeros((n, 3, o.height, width), np.float32))

    def _crop(self, image: np.ndarray, row: np.ndarray, extend: float | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        rh = row[3] - row[1]
        x1 = int(max(0, row[0] - self.pad * rh))
        x2 = int(min(w, row[2] + (self.extend if extend is None else extend) * rh))
        y1 = int(max(0, row[1] - self.pad * rh))
        y2 = int(min(h, row[3] + self.pad * rh))
        return image[y1:y2, x1:x2]

    def _crops(self, image: np.ndarray, cand: Candidate) -> list[np.ndarray]:
        """The candidate's rows cut out; only the last is widened for the check digit."""
        last = len(cand.rows) - 1
        return [self._crop(image, row, None if i == last else 0.0) for i, row in enumerate(cand.rows)]

    def _recognise(self, crops: list[np.ndarray]) -> tuple[list[str], list[float], list[np.ndarray | None]]:
        """rec on ``crops``: texts, scores and each crop's (steps, classes) probabilities, one
        recogniser call per padded width (``batch_crops``) or per crop."""
        self.reads += len(crops)
        crops = [as_bgr(c) for c in crops]
        texts, scores, probs = [""] * len(crops), [0.0] * len(crops), [None] * len(crops)
        by_width: dict[int, list[int]] = {}
        for i, crop in enumerate(crops):
            by_width.setdefault(self.rec.padded_width(crop), []).append(i)
        for members in by_width.values():
            size = len(members) if self.batch_crops else 1
            for idx, batch in self.rec.preprocess([crops[i] for i in members], batch_size=size):
                out = self.rec.infer(batch)
                self.calls += 1
                for b, (j, text, score) in enumerate(zip(idx, *self.rec.postprocess(out))):
                    i = members[j]
                    texts[i], scores[i], probs[i] = text, float(score), out[b]
        if self.scorer is None:  # a recogniser whose classes cannot weigh a check digit
            probs = [None] * len(crops)
        return texts, scores, probs

    def process(self, frame: Frame) -> Frame:
        t = time.perf_counter()
        frame = self._process(frame)
        self._pace((time.perf_counter() - t) * 1e3)
        return frame

    def _process(self, frame: Frame) -> Frame:
        image = frame.full_image
        h, w = image.shape[:2]
        # Rows taller than max_height of the frame are not lettering (DB sometimes fires on a
        # whole container side); rows shorter than min_height px cannot be read.
        groups = [g for g in group_lines(frame.text_boxes())
                  if self.min_height <= max(r[3] - r[1] for r in g) and max(r[3] - r[1] for r in g) <= self.max_height * h]
        candidates = [Candidate(_union(g), g) for g in groups]
        self._seen += 1
        if (self._seen - 1) % self.period:  # a frame this stage skips: the tracker gets boxes, no reads
            frame.candidates = candidates
            return frame
        confirmed = (self.tracker.confirmed_boxes(frame.index)
                     if self.tracker is not None and self.skip_converged else [])
        crops, owners = [], []
        for i, cand in enumerate(candidates):
            # Cut by the frame's edge (entering or leaving): no whole code to read yet.
            margin = max(self.edge, 0.3 * min(r[3] - r[1] for r in cand.rows))
            partial = cand.box[0] <= margin or cand.box[2] >= w - 1 - margin
            if partial or any(box_iou(cand.box, box) > 0.3 for box in confirmed):
                cand.skipped = True
                self.skipped += 1
                continue
            for crop in self._crops(image, cand):
                crops.append(crop)
                owners.append(i)
        if crops:
            texts, scores, probs = self._recognise(crops)
            rows: dict[int, list[tuple[str, float, np.ndarray | None]]] = {}
            for i, text, score, p in zip(owners, texts, scores, probs):
                rows.setdefault(i, []).append((text, score, p))
            failed = []
            for i, parts in rows.items():
                cand = candidates[i]
                cand.text, cand.score = " ".join(t for t, _, _ in parts), float(min(s for _, s, _ in parts))
                cand.read = parse_container_code(cand.text)
                if not cand.read.valid and len(cand.read.raw) >= self.retry_chars:
                    failed.append(cand)
                    if self.scorer is not None and all(p is not None for _, _, p in parts):
                        evidence = self.scorer.evidence([p for _, _, p in parts])
                        read = read_by_likelihood(cand.read.raw, evidence, self.digit_margin)
                        cand.read = read if read.valid else dataclasses.replace(cand.read, evidence=read.evidence)
            self._second_chance(image, [c for c in failed if not c.read.valid and not self._contradicted(c.read)])
        frame.candidates = candidates
        return frame

    def _contradicted(self, read: CodeRead) -> bool:
        """The likeliest check digit leads by ``digit_margin`` but is not the one the serial
        read needs: the digit is read, the serial is misread; reading the digit again on its
        own cannot help (on the development videos it never did)."""
        if not read.evidence:
            return False
        prefix, post = read.evidence[0]
        order = np.argsort(post)[::-1]
        return order[0] != check_digit(prefix) and post[order[0]] - post[order[1]] >= self.digit_margin

    def _second_chance(self, image: np.ndarray, failed: list[Candidate]) -> None:
        """Read again the candidates that came close: first the check digit alone (the last
        glyph group of the last row, frame cut away, :func:`check_digit_crop`), then, for those
        still failing and only without a likelihood to weigh, the rows with check-digit frames
        erased (:func:`remove_frames`)."""
        if not failed:
            return
        digits = [(cand, check_digit_crop(self._crop(image, cand.rows[-1]))) for cand in failed]
        digits = [(cand, crop) for cand, crop in digits if crop is not None]
        if digits:
            texts, scores, _ = self._recognise([crop for _, crop in digits])
            for (cand, _), text, score in zip(digits, texts, scores):
                digit = unicodedata.normalize("NFKC", text).strip().upper()
                read = with_check_digit(cand.read.raw, digit)
                if read.valid:
                    cand.text, cand.score = f"{cand.text} [{digit}]", min(cand.score, float(score))
                    cand.read = dataclasses.replace(read, evidence=cand.read.evidence)
        failed = [cand for cand in failed if not cand.read.valid]
        if not failed or self.scorer is not None:
            # Erasing the frames and reading the rows again is for a recogniser whose
            # likelihood cannot be weighed: with it, it found nothing more on the development
            # videos, at the cost of one more inference a frame.
            return
        crops, owners = [], []
        for i, cand in enumerate(failed):
            for crop in self._crops(image, cand):
                crops.append(remove_frames(crop))
                owners.append(i)
        texts, scores, _ = self._recognise(crops)
        for i, cand in enumerate(failed):
            parts = [(t, s) for o, t, s in zip(owners, texts, scores) if o == i]
            text = " ".join(t for t, _ in parts)
            read = parse_container_code(text)
            if read.valid:
                cand.text, cand.score = text, float(min(s for _, s in parts))
                cand.read = dataclasses.replace(read, evidence=cand.read.evidence)
