"""Following code candidates across frames: a track per code (constant-velocity prediction),
votes over its reads, the check digit's likelihood pooled over frames, and one event per
container passing the gate (:class:`TrackerStage`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedeploy.datasets.iso6346 import check_digit, prefixes
from edgedeploy.pipelines.gate.reading import Candidate, box_iou
from edgedeploy.pipelines.stage import Frame, Stage

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

    A track is matched to the candidate its predicted box (constant velocity, measured on the
    box edges that move with the lettering: :meth:`_shift`) overlaps most
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

    budget_share = 0.05
    BORDER = 2.0  # px: a box edge this near the frame's border is where the frame cut the code

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
        iou = box_iou(pred, box)
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

    def _shift(self, old: np.ndarray, new: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """How far the lettering moved from box ``old`` to box ``new`` (dx, dy), ``expected``: the
        track's predicted shift.

        The centre of the boxes is not it: an edge cut by the frame's border stays on the border
        while the code enters or leaves (the centre moves half as fast), and an edge of a code
        painted owner over serial jumps by a row's height when that row is lost or found again
        (the centre jumps half a row; followed as motion, the prediction drifts off the code and
        the track splits in two). Per axis, an edge on the frame's border measures nothing; the
        shifts of the other edges and the expected shift vote, and their median wins: two edges
        moving together outvote the prediction, one edge jumping by a row is outvoted by the
        edge that stayed and the prediction."""
        hw = self._frame_hw
        shift = np.array(expected, np.float32)
        for axis in (0, 1):
            lo, hi = axis, axis + 2
            limit = (hw[1 - axis] - 1 - self.BORDER) if hw is not None else np.inf
            moved = [new[i] - old[i] for i, cut in ((lo, min(old[lo], new[lo]) <= self.BORDER),
                                                    (hi, max(old[hi], new[hi]) >= limit)) if not cut]
            if len(moved) == 2:
                shift[axis] = float(np.median([*moved, expected[axis]]))
            elif moved:
                shift[axis] = moved[0]
        return shift

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
                shift = self._shift(track.box, cand.box, track.velocity * dt if track.hits > 1 else np.zeros(2))
                track.velocity = 0.5 * track.velocity + 0.5 * (shift / dt) if track.hits > 1 else shift / dt
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
        """Every read of ``track`` long enough to make it a container (``unreadable_chars``) is part
        of a code read by a track beside it in time (alive, or emitted in the last
        ``dedup_frames`` frames): a piece of that container's lettering followed on its own for a
        while (its serial row alone, its last glyphs at the frame's edge), not a container of its
        own. (Its short reads, a few glyphs misread at the frame's edge, make no container either way.)"""
        reads = [raw for raw in track.raws if len(raw) >= self.unreadable_chars]
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
        events = self.update(frame.index, frame.candidates or [], frame.full_image, frame.pts)
        frame.events.extend(events)
        frame.tracks = [(t.id, t.box.copy(), t.leader()[0]) for t in self.tracks]
        return frame

    def finish(self, end: Frame) -> Frame:
        end.events.extend(self.flush())
        return end
