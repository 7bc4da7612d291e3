"""Container-number recognition at the gate: text detection → recognition → ISO 6346 parsing →
a tracker that votes across frames and emits one event per container passing the gate.

Kept fast enough for a live camera on a small CPU by doing less, not by hoping:
detection runs on a downscaled frame (and drops frames by policy when it falls behind), line
crops come from the full-resolution frame, and a track whose code is already confirmed by
``confirm_votes`` agreeing valid reads is not read again: the tracker fills in its position.
A check digit painted in a frame (read as 回, ⑧, θ or nothing) is weighed by the recogniser's
own CTC likelihood on the same line (each digit 0-9 in its place: no new inference), then read
again on its own; a track's code needs two agreeing reads (one wrong read passes the check
digit 1 time in 10), or, where no frame reads the check digit well enough, the check digit's
likelihood pooled over the track's frames confirming an owner + serial read in several frames.

    >>> from edgedeploy.pipelines import Pipeline, VideoSource, gate
    >>> report = Pipeline(VideoSource("gate.mp4", realtime=True), gate.gate_stages()).run()
    >>> [e["code"] for e in report.events]
"""

from __future__ import annotations

import dataclasses
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedeploy.datasets.iso6346 import CodeRead, check_digit, parse_container_code, prefixes, with_check_digit
from edgedeploy.pipelines.container_code import CheckDigitScorer, check_digit_crop, read_by_likelihood, remove_frames
from edgedeploy.pipelines.ocr import DetectStage, load_task
from edgedeploy.pipelines.runtime import Frame, Stage

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


def _iou(a: np.ndarray, b: np.ndarray) -> float:
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
    """

    def __init__(self, *, model: str = "ppocrv6-rec", path: str | None = None, engine: str = "onnxruntime",
                 threads: int | None = 1, extend: float = 1.5, pad: float = 0.15, min_height: float = 8.0,
                 max_height: float = 0.25, edge: float = 2.0, retry_chars: int = 9, digit_margin: float = 2.0,
                 tracker: str | None = "track", name: str = "read"):
        self.model, self.path, self.engine, self.threads = model, path, engine, threads
        self.extend, self.pad, self.min_height, self.tracker_name, self.name = extend, pad, min_height, tracker, name
        self.max_height = max_height
        self.edge, self.retry_chars, self.digit_margin = edge, retry_chars, digit_margin
        self.rec, self.tracker, self.scorer = None, None, None
        self.reads = self.skipped = 0

    def open(self, pipeline) -> None:
        if self.rec is None:
            self.rec = load_task("rec", self.model, path=self.path, engine=self.engine, threads=self.threads)
        if self.scorer is None and hasattr(self.rec, "infer") and hasattr(self.rec, "decode"):
            try:
                self.scorer = CheckDigitScorer(self.rec.decode.characters)
            except ValueError:  # a recogniser without digits or a space: no likelihood to weigh
                self.scorer = None
        self.tracker = pipeline.stage(self.tracker_name) if self.tracker_name and pipeline is not None else None

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
        """rec on ``crops``: texts, scores and each crop's (steps, classes) probabilities."""
        self.reads += len(crops)
        if self.scorer is None:  # a recogniser that does not expose its probabilities
            result = self.rec(crops)
            return result.texts, result.scores, [None] * len(crops)
        from edgedeploy.tasks.common import as_bgr

        texts, scores, probs = [""] * len(crops), [0.0] * len(crops), [None] * len(crops)
        for idx, batch in self.rec.preprocess([as_bgr(c) for c in crops]):
            out = self.rec.infer(batch)
            for b, (i, text, score) in enumerate(zip(idx, *self.rec.postprocess(out))):
                texts[i], scores[i], probs[i] = text, float(score), out[b]
        return texts, scores, probs

    def process(self, frame: Frame) -> Frame:
        image = frame.data.get("full", frame.image)
        h, w = image.shape[:2]
        # Rows taller than max_height of the frame are not lettering (DB sometimes fires on a
        # whole container side); rows shorter than min_height px cannot be read.
        groups = [g for g in group_lines(frame.data.get("boxes", np.zeros((0, 4, 2), np.float32)))
                  if self.min_height <= max(r[3] - r[1] for r in g) and max(r[3] - r[1] for r in g) <= self.max_height * h]
        candidates = [Candidate(_union(g), g) for g in groups]
        confirmed = self.tracker.confirmed_boxes(frame.index) if self.tracker is not None else []
        crops, owners = [], []
        for i, cand in enumerate(candidates):
            # Cut by the frame's edge (entering or leaving): no whole code to read yet.
            margin = max(self.edge, 0.3 * min(r[3] - r[1] for r in cand.rows))
            partial = cand.box[0] <= margin or cand.box[2] >= w - 1 - margin
            if partial or any(_iou(cand.box, box) > 0.3 for box in confirmed):
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
        frame.data["candidates"] = candidates
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


# --- tracking and voting ------------------------------------------------------------------------

@dataclass
class Track:
    """One code moving through the frame, with the votes of its reads."""

    id: int
    box: np.ndarray
    first_frame: int
    last_frame: int
    first_pts: float | None
    last_pts: float | None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    hits: int = 1
    votes: Counter = field(default_factory=Counter)
    score_sum: Counter = field(default_factory=Counter)
    reads: int = 0  # reads attempted (valid or not)
    partial: Counter = field(default_factory=Counter)  # owner + serial of reads without a valid code
    longest: int = 0  # most letters/digits in one read: a track of stray marks never nears 11
    snapshot: np.ndarray | None = None
    snapshot_score: float = -1.0
    # The check digit's log-posterior over 0..9 (CheckDigitScorer), summed over the reads that
    # did not validate as read: one painted glyph, weighed again in every frame.
    digit_evidence: np.ndarray = field(default_factory=lambda: np.zeros(10))
    digit_reads: int = 0
    digit_leaders: Counter = field(default_factory=Counter)  # the likeliest digit of each of those reads
    raws: Counter = field(default_factory=Counter)  # the letters and digits of each read

    def predict(self, frame_index: int) -> np.ndarray:
        dx, dy = self.velocity * (frame_index - self.last_frame)
        return self.box + np.array([dx, dy, dx, dy], np.float32)

    def leader(self) -> tuple[str | None, int]:
        if not self.votes:
            return None, 0
        code = max(self.votes, key=lambda c: (self.votes[c], self.score_sum[c]))
        return code, self.votes[code]


class TrackerStage(Stage):
    """Follow code candidates across frames, vote on their reads, emit one event per container.

    A track is matched to the candidate its predicted box (constant velocity) overlaps most
    (IoU ≥ ``min_iou``, or same row and near); it ends when unseen for ``max_age`` frames or
    when it has left the frame. On ending it emits ``{"type": "container", "code", "valid",
    "confidence", "first_frame", "last_frame", "snapshot", ...}`` if it had a valid read, or
    with ``code: null`` if it was seen ``min_hits`` times without one, with a read of at least
    ``unreadable_chars`` letters/digits (``emit_unreadable``: the gate should look again).
    The winning code needs ``min_votes`` supporting reads (valid reads of it, or reads whose
    owner and serial match it and whose check digit was missed) and more valid reads than all
    other codes together; a track without one emits ``code: null`` (its reads in ``alternatives``).
    confidence = share of reads agreeing with the winner x their mean recogniser score, scaled
    down while fewer than ``confirm_votes`` agree.
    Where no code wins so, the check digit's likelihood pooled over the track's reads
    (:meth:`by_check_digit`, ``digit_margin`` log-odds a read on average) may confirm an owner +
    serial read in ``min_votes`` frames or more: the event says ``decided_by: "check-digit
    likelihood"`` (else ``"votes"``).
    A track whose code has ``confirm_votes`` agreeing valid reads (and twice as many as any
    others together), or a pooled code with as much support, is confirmed: the read stage
    stops reading it. A track whose leading code was emitted in the last ``dedup_frames``
    frames is merged into that event (a track broken in two), even when it alone would not
    have enough support. A code painted owner over serial whose owner row goes undetected in
    some frames stays one track (a box a row shorter or taller, within the other, matches). An
    unreadable track whose every read is part of a code read beside it in time is a piece of
    that container's lettering: no event.
    """

    def __init__(self, *, max_age: int = 20, min_iou: float = 0.1, confirm_votes: int = 3, min_votes: int = 2,
                 min_hits: int = 3, digit_margin: float = 0.75,
                 emit_unreadable: bool = True, unreadable_chars: int = 7, dedup_frames: int = 250, snapshots: str | None = None,
                 name: str = "track"):
        self.max_age, self.min_iou, self.confirm_votes, self.min_votes = max_age, min_iou, confirm_votes, min_votes
        self.digit_margin = digit_margin
        self.min_hits, self.emit_unreadable, self.dedup_frames = min_hits, emit_unreadable, dedup_frames
        self.unreadable_chars = unreadable_chars
        self.snapshots = Path(snapshots) if snapshots else None
        self.name = name
        self.tracks: list[Track] = []
        self._next_id = 1
        self._recent: dict[str, int] = {}  # code → last frame of its event
        self._lock = threading.Lock()
        self._frame_hw: tuple[int, int] | None = None

    def open(self, pipeline) -> None:
        if self.snapshots:
            self.snapshots.mkdir(parents=True, exist_ok=True)

    def confirmed_boxes(self, frame_index: int) -> list[np.ndarray]:
        """Predicted boxes, at ``frame_index``, of the tracks whose code is confirmed."""
        with self._lock:
            return [t.predict(frame_index) for t in self.tracks if self._confirmed(t)]

    def _confirmed(self, track: Track) -> bool:
        """``confirm_votes`` agreeing valid reads, and at least twice as many as all the others;
        or a code the pooled check digit confirms (:meth:`by_check_digit`) with as much support."""
        votes = track.leader()[1]
        if votes >= self.confirm_votes and votes >= 2 * (sum(track.votes.values()) - votes):
            return True
        pooled = self.by_check_digit(track)
        return pooled is not None and pooled[1] >= self.confirm_votes

    def by_check_digit(self, track: Track) -> tuple[str, int, float] | None:
        """The code the track's pooled check-digit evidence confirms: (code, support, margin).

        The check digit's log-posteriors from the reads that missed it (at least
        ``confirm_votes`` of them) are pooled. Frames of one glyph are not independent trials,
        so the pool is judged per read, not summed: the likeliest digit d must lead the next by
        ``digit_margin`` log-odds on average, and be the likeliest in 3 reads of 4. (Read
        offline, on the gate videos of seeds 100-119 and the benchmark's 4, 15, 27 and 28,
        pools that favoured a wrong digit led by at most 0.56 a read, the right ones mostly by
        0.85 or more.) Of the owner + serials read (with or without a check digit), those whose
        check digit is d compete: the one read most often wins if it was read at least
        ``min_votes`` times, more often than the other such ones together, and more often than
        valid reads of other codes. None otherwise.
        """
        n = track.digit_reads
        if n < max(self.confirm_votes, self.min_votes):
            return None
        order = np.argsort(track.digit_evidence)[::-1]
        digit = int(order[0])
        margin = float(track.digit_evidence[digit] - track.digit_evidence[order[1]]) / n
        if margin < self.digit_margin or track.digit_leaders[digit] < 0.75 * n:
            return None
        support = Counter(track.partial)
        for code, votes in track.votes.items():
            support[code[:10]] += votes
        same = {p: k for p, k in support.items() if check_digit(p) == digit}
        if not same:
            return None
        prefix, k = max(same.items(), key=lambda kv: (kv[1], kv[0]))
        others = sum(v for code, v in track.votes.items() if code[:10] != prefix)
        if k < self.min_votes or k <= sum(same.values()) - k or k <= others:
            return None
        return prefix + str(digit), k, margin

    @staticmethod
    def _row_change(pred: np.ndarray, box: np.ndarray) -> bool:
        """``box`` is the code of ``pred`` with a row more or fewer (a code painted owner over
        serial, one of its rows not detected in some frames): heights differ by a row, and
        the smaller box lies within the larger."""
        ratio = (box[3] - box[1]) / max(pred[3] - pred[1], 1e-3)
        if 0.6 <= ratio <= 1.67 or not 0.3 <= ratio <= 3.4:
            return False
        iw = min(pred[2], box[2]) - max(pred[0], box[0])
        ih = min(pred[3], box[3]) - max(pred[1], box[1])
        smaller = min((pred[2] - pred[0]) * (pred[3] - pred[1]), (box[2] - box[0]) * (box[3] - box[1]))
        return iw > 0 and ih > 0 and iw * ih >= 0.8 * smaller

    def _match_score(self, track: Track, box: np.ndarray, frame_index: int) -> float:
        pred = track.predict(frame_index)
        ratio = (box[3] - box[1]) / max(pred[3] - pred[1], 1e-3)
        if not 0.6 <= ratio <= 1.67:  # lettering does not change size between frames ...
            # ... but a row of it may go undetected for a while: the same code, weakly.
            return self.min_iou / 2 if self._row_change(pred, box) else 0.0
        iou = _iou(pred, box)
        if iou >= self.min_iou:
            return iou
        h = min(pred[3] - pred[1], box[3] - box[1])
        vertical = min(pred[3], box[3]) - max(pred[1], box[1])
        dx = abs((pred[0] + pred[2]) - (box[0] + box[2])) / 2
        if vertical >= 0.5 * h and dx < 0.75 * max(pred[2] - pred[0], box[2] - box[0]):
            return self.min_iou / 2  # same row, near: weaker than any overlap
        return 0.0

    def update(self, frame_index: int, candidates: list[Candidate], image: np.ndarray | None = None,
               pts: float | None = None) -> list[dict]:
        """Feed one frame's candidates; return the events of the tracks that ended."""
        with self._lock:
            if image is not None:
                self._frame_hw = image.shape[:2]
            pairs = sorted(((self._match_score(t, c.box, frame_index), ti, ci)
                            for ti, t in enumerate(self.tracks) for ci, c in enumerate(candidates)), reverse=True)
            used_t, used_c = set(), set()
            for score, ti, ci in pairs:
                if score <= 0 or ti in used_t or ci in used_c:
                    continue
                used_t.add(ti)
                used_c.add(ci)
                self._observe(self.tracks[ti], candidates[ci], frame_index, image, pts)
            for ci, cand in enumerate(candidates):
                if ci not in used_c:
                    track = Track(self._next_id, cand.box.copy(), frame_index, frame_index, pts, pts, hits=0)
                    self._next_id += 1
                    self.tracks.append(track)
                    self._observe(track, cand, frame_index, image, pts, new=True)
            ended = [t for t in self.tracks if frame_index - t.last_frame > self.max_age or self._left(t, frame_index)]
            self.tracks = [t for t in self.tracks if t not in ended]
            return [e for t in ended if (e := self._event(t)) is not None]

    def _left(self, track: Track, frame_index: int) -> bool:
        if self._frame_hw is None or frame_index == track.last_frame:
            return False
        box = track.predict(frame_index)
        h, w = self._frame_hw
        return box[2] < 0 or box[0] > w or box[3] < 0 or box[1] > h

    def _observe(self, track: Track, cand: Candidate, frame_index: int, image, pts, new: bool = False) -> None:
        pred = track.predict(frame_index)
        if not new and self._row_change(pred, cand.box):
            # A row lost or found again: the box jumps, the code does not move. Keep the
            # velocity; keep the larger box (the code as a whole).
            bigger = (cand.box[3] - cand.box[1]) > (pred[3] - pred[1])
            track.box = cand.box.copy() if bigger else pred
        else:
            if not new:
                dt = max(frame_index - track.last_frame, 1)
                centre_shift = ((cand.box[:2] + cand.box[2:]) - (track.box[:2] + track.box[2:])) / 2
                track.velocity = 0.5 * track.velocity + 0.5 * (centre_shift / dt) if track.hits > 1 else centre_shift / dt
            track.box = cand.box.copy()
        track.last_frame, track.last_pts = frame_index, pts
        track.hits += 1
        if cand.read is not None:
            track.reads += 1
            track.longest = max(track.longest, len(cand.read.raw))
            track.raws[cand.read.raw] += 1
            if cand.read.evidence:
                track.digit_evidence = track.digit_evidence + cand.read.evidence[0][1]
                track.digit_reads += 1
                track.digit_leaders[int(np.argmax(cand.read.evidence[0][1]))] += 1
            if not cand.read.valid:
                track.partial.update(prefixes(cand.read.raw))
            else:
                track.votes[cand.read.code] += 1
                track.score_sum[cand.read.code] += cand.score
                if image is not None and cand.score > track.snapshot_score:
                    x1, y1, x2, y2 = cand.box.astype(int)
                    m = int(0.5 * (y2 - y1))
                    track.snapshot = image[max(0, y1 - m):y2 + m, max(0, x1 - m):x2 + m].copy()
                    track.snapshot_score = cand.score

    def _event(self, track: Track) -> dict | None:
        code, votes = track.leader()
        last = self._recent.get(code) if code is not None else None
        if last is not None and track.first_frame - last <= self.dedup_frames:
            self._recent[code] = track.last_frame
            return None  # the container of an event just emitted, its track broken in two
        # One read that happens to pass the check digit (1 wrong read in 10 does) must not
        # become the container's code: the winner needs min_votes agreeing reads and more
        # than all the others together; otherwise the event says "unreadable", with the reads.
        # A read whose owner and serial match but whose check digit was missed supports it too.
        support = votes + track.partial[code[:10]] if code is not None else 0
        if code is not None and (support < self.min_votes or votes <= sum(track.votes.values()) - votes):
            code, votes = None, 0
        decided_by, margin = "votes", None
        if code is None and (pooled := self.by_check_digit(track)) is not None:
            # No code read whole often enough, but the check digit weighed in every frame
            # confirms one owner + serial read often enough: that code.
            code, votes, margin = pooled
            decided_by = "check-digit likelihood"
            last = self._recent.get(code)
            if last is not None and track.first_frame - last <= self.dedup_frames:
                self._recent[code] = track.last_frame
                return None
        if code is None and (not self.emit_unreadable or track.hits < self.min_hits
                             or track.longest < self.unreadable_chars or self._fragment(track)):
            return None
        if code is not None:
            self._recent[code] = track.last_frame
        valid_reads = sum(track.votes.values())
        confidence = 0.0
        if code is not None and margin is None:  # agreement x recogniser score x support (full at confirm_votes)
            confidence = (votes / max(track.reads, 1) * track.score_sum[code] / votes
                          * min(1.0, votes / self.confirm_votes))
        elif code is not None:  # agreement x the check digit's odds over the next x support
            confidence = (min(1.0, votes / max(track.reads, 1)) / (1 + np.exp(-margin))
                          * min(1.0, votes / self.confirm_votes))
        snapshot = None
        if self.snapshots is not None and track.snapshot is not None and track.snapshot.size:
            import cv2

            path = self.snapshots / f"{code or 'unreadable'}_{track.first_frame:06d}.jpg"
            cv2.imwrite(str(path), track.snapshot)
            snapshot = str(path)
        return {"type": "container", "code": code, "valid": code is not None, "confidence": round(confidence, 4),
                "votes": votes, "valid_reads": valid_reads, "reads": track.reads, "track": track.id,
                "decided_by": decided_by if code is not None else None,
                "first_frame": track.first_frame, "last_frame": track.last_frame,
                "first_pts": track.first_pts, "last_pts": track.last_pts,
                "alternatives": {c: n for c, n in track.votes.items() if c != code}, "snapshot": snapshot}

    def _fragment(self, track: Track) -> bool:
        """Everything ``track`` read is part of a code read by a track beside it in time (alive,
        or emitted in the last ``dedup_frames`` frames): a piece of that container's lettering
        followed on its own for a while (its serial row alone, its last glyphs at the frame's
        edge), not a container of its own."""
        reads = [raw for raw in track.raws if raw]
        if not reads:
            return False
        codes = [c for c, last in self._recent.items() if track.first_frame - last <= self.dedup_frames]
        codes += [c for t in self.tracks if t is not track and (c := t.leader()[0]) is not None]
        return any(all(raw in code for raw in reads) for code in codes)

    def flush(self) -> list[dict]:
        """End every open track (the stream ended): those with a code first, so that pieces of
        their lettering followed alone are known as such."""
        with self._lock:
            ended, self.tracks = sorted(self.tracks, key=lambda t: t.leader()[0] is None), []
            return [e for t in ended if (e := self._event(t)) is not None]

    def process(self, frame: Frame) -> Frame:
        image = frame.data.get("full", frame.image)
        events = self.update(frame.index, frame.data.get("candidates", []), image, frame.pts)
        frame.events.extend(events)
        frame.data["tracks"] = [(t.id, t.box.copy(), t.leader()[0]) for t in self.tracks]
        return frame

    def finish(self, end: Frame) -> Frame:
        end.events.extend(self.flush())
        return end


GATE_DET_OPTIONS = {"limit_type": "max", "limit_side_len": 320, "thresh": 0.2, "box_thresh": 0.3}


def gate_stages(*, engine: str = "onnxruntime", det_threads: int = 1, rec_threads: int = 1,
                snapshots: str | None = None, **tracker_options) -> list[Stage]:
    """detect (downscaled to 320 px) → read (skipping confirmed tracks) → track (vote, emit)."""
    return [DetectStage(engine=engine, threads=det_threads, **GATE_DET_OPTIONS),
            ReadStage(engine=engine, threads=rec_threads),
            TrackerStage(snapshots=snapshots, **tracker_options)]


# --- evaluation against a generated gate video's truth -----------------------------------------

def evaluate_events(events: list[dict], truth) -> dict:
    """Match container events to the truth of a gate video and score them.

    Each container is matched to an event overlapping the frames it was in view: one with its
    own code if there is one, else the unused event overlapping most; its predicted code is that
    event's (None when unmatched).
    Returns :func:`~edgedeploy.evaluation.metrics.container_accuracy` fields plus
    ``extra_events`` (events matched to no container) and ``errors`` (what went wrong where).
    """
    from edgedeploy.evaluation.metrics import container_accuracy

    events = [e for e in events if e.get("type") == "container"]
    used: set[int] = set()
    match: dict[int, int] = {}

    def overlap(c, e) -> int:
        return min(c.last_frame, e["last_frame"]) - max(c.first_frame, e["first_frame"]) + 1

    # First an event carrying the container's own code while it was in view, then the unused
    # event overlapping its frames most: a missed container is not credited with its neighbour's read.
    for same_code in (True, False):
        for ci, c in enumerate(truth.containers):
            if ci in match:
                continue
            options = [(overlap(c, e), i) for i, e in enumerate(events)
                       if i not in used and overlap(c, e) > 0 and (e.get("code") == c.code) == same_code]
            if options:
                match[ci] = max(options)[1]
                used.add(match[ci])
    preds, errors = [], []
    for ci, c in enumerate(truth.containers):
        best = match.get(ci)
        pred = events[best]["code"] if best is not None else None
        preds.append(pred)
        if pred != c.code:
            errors.append({"truth": c.code, "read": pred, "frames": [c.first_frame, c.last_frame],
                           "event": events[best] if best is not None else None})
    result = container_accuracy(preds, truth.codes).to_dict()
    result["extra_events"] = len(events) - len(used)
    result["errors"] = errors
    return result
