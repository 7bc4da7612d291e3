"""Reading an ISO 6346 container code from recogniser output beyond parsing (which is
:func:`edgedeploy.datasets.iso6346.parse_container_code`, shared with the evaluation): when a
check digit painted in a frame is read as 回, ⑧, θ or nothing, weighing each digit 0-9 by the
recogniser's own CTC likelihood on the same line (no new inference), or reading it again alone
from a crop with the frame erased. Used by :mod:`edgedeploy.pipelines.gate.reading`.
"""

from __future__ import annotations

import re
import unicodedata

import cv2
import numpy as np

from edgedeploy.datasets.iso6346 import DIGIT_FOR, CodeRead, check_digit, coerce_window, parse_container_code

# --- the check digit by likelihood --------------------------------------------------------------

def ctc_log_likelihood(blank: np.ndarray, emit: np.ndarray, repeat: np.ndarray) -> np.ndarray:
    """log P(label | line) under CTC, for ``B`` labels of one length ``L``, over ``T`` steps.

    blank: (T,) the blank's probability at each step; emit: (B, T, L) the probability of each
    label's l-th symbol at each step (a symbol may stand for several classes, their
    probabilities summed); repeat: (B, L) whether symbol l is symbol l-1 again (a blank must
    then separate them). The forward recursion, rescaled at every step.
    """
    emit = np.asarray(emit, np.float64)
    b, t_steps, length = emit.shape
    states = 2 * length + 1
    e = np.empty((b, t_steps, states))
    e[:, :, 0::2] = np.asarray(blank, np.float64)[None, :, None]
    e[:, :, 1::2] = emit
    np.maximum(e, 1e-12, out=e)
    skip = np.zeros((b, states), bool)
    skip[:, 3::2] = ~np.asarray(repeat, bool)[:, 1:]
    a = np.zeros((b, states))
    a[:, 0], a[:, 1] = e[:, 0, 0], e[:, 0, 1]
    log_scale = np.zeros(b)
    for t in range(1, t_steps):
        c = a.sum(1, keepdims=True)
        a = a / c
        log_scale += np.log(c[:, 0])
        n = a.copy()
        n[:, 1:] += a[:, :-1]
        n[:, 2:] += np.where(skip[:, 2:], a[:, :-2], 0.0)
        a = n * e[:, t]
    end = a[:, -1] + (a[:, -2] if states > 1 else 0.0)
    return np.log(np.maximum(end, 1e-300)) + log_scale


class CheckDigitScorer:
    """Weigh each of the 10 digits as a line's check digit by the recogniser's own likelihood.

    A check digit painted in a frame is often read as nothing, a space, 回 or θ, though the
    recogniser's per-step probabilities still favour the right digit. For each owner + serial
    the greedy read of a line may hold (coerced as in :func:`parse_container_code`), the line as
    read up to that serial's last character, then an optional space, then digit d, is scored
    with CTC (:func:`ctc_log_likelihood`) on the line's last row, for d = 0..9: the posterior
    over the 10 digits.

    What a digit looks like to the recogniser is one of two things, and the posterior is their
    even mixture: a plain digit (the ASCII digit, or a capital it is confused with, as in the
    digit slots of :func:`parse_container_code`), or any of its forms (also ⑧, ８, ⁸: NFKC). A
    framed digit is often read as a circled one, which the second counts; but a framed stencil
    0 is read as ⑨ or ⑥ as readily, which would mislead it alone.

    ``characters``: the recogniser's classes, blank first (``rec.decode.characters``).
    """

    def __init__(self, characters):
        chars = [str(c) for c in characters]
        nfkc = [unicodedata.normalize("NFKC", c) for c in chars]
        self.alnum = [re.sub(r"[^0-9A-Z]", "", n.upper()) for n in nfkc]
        plain = [[i for i, c in enumerate(chars) if c == str(d) or DIGIT_FOR.get(c) == str(d)] for d in range(10)]
        forms = [[i for i, n in enumerate(nfkc) if n == str(d) or DIGIT_FOR.get(n) == str(d)] for d in range(10)]
        self.groups = [np.array(g, int) for g in plain + forms]  # 20: plain 0..9, then all forms 0..9
        self.space = np.array([i for i, c in enumerate(chars) if c and not c.strip()], int)
        if any(len(g) == 0 for g in self.groups) or len(self.space) == 0:
            raise ValueError("the recogniser's classes lack a digit or the space")

    @staticmethod
    def greedy(probs: np.ndarray) -> list[int]:
        """The classes the greedy CTC path keeps (repeats collapsed, blanks dropped)."""
        idx = probs.argmax(1)
        keep = idx != 0
        keep[1:] &= idx[1:] != idx[:-1]
        return idx[keep].tolist()

    def posterior(self, probs: np.ndarray, head: list[int]) -> np.ndarray:
        """log P(d | line) for d = 0..9: the line is ``head`` (class indices) then digit d,
        with or without a space between; normalised over the 10 digits."""
        probs = np.asarray(probs)  # only the columns needed are taken out (and made float64)
        t_steps, n = len(probs), len(self.groups)
        digits = np.stack([probs[:, g].sum(1) for g in self.groups])  # (20, T)
        head_emit = np.broadcast_to(probs[:, head].T[None], (n, len(head), t_steps))
        head_rep = np.broadcast_to(np.array([False] + [head[i] == head[i - 1] for i in range(1, len(head))], bool),
                                   (n, len(head)))
        last = head[-1] if head else -1
        lls = []
        for spaced in (False, True):
            if spaced:
                space = np.broadcast_to(probs[:, self.space].sum(1)[None, None], (n, 1, t_steps))
                emit = np.concatenate([head_emit, space, digits[:, None]], axis=1)
                rep = np.concatenate([head_rep, np.full((n, 1), last in self.space), np.zeros((n, 1), bool)], axis=1)
            else:
                emit = np.concatenate([head_emit, digits[:, None]], axis=1)
                rep = np.concatenate([head_rep, np.array([[last in g] for g in self.groups])], axis=1)
            lls.append(ctc_log_likelihood(probs[:, 0], emit.transpose(0, 2, 1), rep))
        ll = np.logaddexp(*lls).reshape(2, 10)
        post = ll - np.logaddexp.reduce(ll, axis=1, keepdims=True)  # each reading normalised
        mixed = np.logaddexp(post[0], post[1])
        return mixed - np.logaddexp.reduce(mixed)

    def evidence(self, rows: list[np.ndarray]) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
        """For a candidate read as ``rows`` (each row's (T, classes) probabilities, top to
        bottom): (owner + serial, positions coerced, check-digit posterior) for every owner +
        serial the greedy read holds that ends on the last row."""
        kept = [self.greedy(p) for p in rows]
        raw, where = [], []  # each letter/digit read: (row, kept index, last of its class's string)
        for j, classes in enumerate(kept):
            for i, k in enumerate(classes):
                s = self.alnum[k]
                raw.extend(s)
                where.extend((j, i, n == len(s) - 1) for n in range(len(s)))
        raw = "".join(raw)
        out: dict[str, tuple[tuple[int, ...], np.ndarray]] = {}
        for start in range(len(raw) - 9):
            coerced = coerce_window(raw[start:start + 10])
            j, i, whole = where[start + 9]
            if coerced is None or coerced[0] in out or j != len(rows) - 1 or not whole:
                continue
            out[coerced[0]] = (coerced[1], self.posterior(rows[j], kept[j][:i + 1]))
        return [(prefix, changed, post) for prefix, (changed, post) in out.items()]


def read_by_likelihood(raw: str, evidence, margin: float) -> CodeRead:
    """A code from ``evidence`` (:meth:`CheckDigitScorer.evidence`): an owner + serial whose
    most likely check digit is the one it needs, ahead of the next digit by ``margin`` (log
    odds); of several, the one needing fewest changes. The digit is never forced: an owner +
    serial whose check digit the recogniser does not favour gives no code."""
    # Fewest changes first: the tracker pools the first one's check digit across frames.
    kept = tuple((prefix, post) for prefix, _, post in sorted(evidence, key=lambda e: len(e[1])))
    best, reason = None, "no owner code + U/J/Z + 6 digits in the read"
    for prefix, changed, post in evidence:
        order = np.argsort(post)[::-1]
        need = check_digit(prefix)
        if order[0] != need:
            reason = f"the likeliest check digit after {prefix} is {order[0]}, not {need}"
        elif post[order[0]] - post[order[1]] < margin:
            reason = f"check digit {need} after {prefix} only {post[order[0]] - post[order[1]]:.1f} ahead"
        elif best is None or len(changed) < len(best[1]):
            best = (prefix + str(need), (*changed, 10))
    if best is None:
        return CodeRead(None, raw, reason=reason, evidence=kept)
    return CodeRead(best[0], raw, best[1], evidence=kept)


def remove_frames(crop: np.ndarray) -> np.ndarray:
    """``crop`` with the frame painted round a check digit erased (recolored as the steel): a
    recogniser reads a framed 0 as 回 and a framed 8 as ⑧ or nothing.

    Strokes are found by top-hat and black-hat (light and dark paint) with Otsu; a frame is a
    roughly square component that is hollow (under 35% of its box inked) and about as tall
    as the glyphs, or under 60% inked and 1.3x taller (the digit blurred into the frame). Only its border band is erased, so a digit blurred into it survives.
    """
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h = crop.shape[0]
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(0.35 * h)),) * 2)
    out = crop.copy()
    for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        _, ink = cv2.threshold(cv2.morphologyEx(grey, op, k), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
        x, y, w, ht, area = (stats[1:, j] for j in range(5))
        glyphs = ht[(ht >= 0.15 * h) & (area >= 20)]
        if not len(glyphs):
            continue
        med = float(np.median(glyphs))
        fill = area / np.maximum(w * ht, 1)
        # Hollow at glyph height, or a little fuller (the digit blurred into it) but taller.
        hollow = ((fill < 0.35) & (ht >= 0.8 * med)) | ((fill < 0.6) & (ht >= 1.3 * med))
        frames = np.flatnonzero(hollow & (ht <= 0.95 * h) & (w >= 0.5 * ht) & (w <= 1.5 * ht)) + 1
        if not len(frames):
            continue
        bg = np.median(crop[ink == 0], axis=0).astype(crop.dtype)
        for i in frames:
            fx, fy, fw, fh = stats[i, :4]
            band = max(2, int(0.18 * fh))
            ring = np.zeros(labels.shape, bool)
            ring[fy:fy + fh, fx:fx + fw] = True
            ring[fy + band:fy + fh - band, fx + band:fx + fw - band] = False
            mask = cv2.dilate((ring & (labels == i)).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            out[mask] = bg
    return out


def check_digit_crop(crop: np.ndarray) -> np.ndarray | None:
    """The last glyph group of a line crop (the check digit, framed or not) cut out alone,
    frame removed, padded and scaled to 48 px tall; None when no glyphs are found.

    The recogniser reads a lone digit well and a framed one badly (回, ⑧ or nothing). Strokes
    (top-hat for light paint, black-hat for dark, then Otsu) of 0.2-0.8 crop heights (a
    frame's thin bars are not) are grouped left to right, a gap over 0.3 glyph heights
    starting a new group: owner, serial and check digit are painted apart. The last group is
    cut out; when it is wider or taller than a digit (the digit blurred into its frame), 0.22
    glyph heights are cut from each side (the frame is painted 0.15 font sizes round the digit).
    """
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h = grey.shape[0]
    if h < 8 or grey.shape[1] < 8:
        return None
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(0.35 * h)),) * 2)
    # Paint is the minority of a line crop: light paint if under half the pixels are light.
    _, light = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    op = cv2.MORPH_TOPHAT if light.mean() < 0.5 else cv2.MORPH_BLACKHAT
    _, ink = cv2.threshold(cv2.morphologyEx(grey, op, k), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    best = stats[1:][(stats[1:, 3] >= 0.2 * h) & (stats[1:, 3] <= 0.8 * h) & (stats[1:, 4] >= 15)]
    if len(best) < 2:
        return None
    gh = float(np.median(best[:, 3]))
    groups: list[list[int]] = []  # x1, y1, x2, y2
    for x, y, w, ht, _ in sorted(best.tolist()):
        if groups and x - groups[-1][2] <= 0.3 * gh:
            g = groups[-1]
            g[:] = [g[0], min(g[1], y), max(g[2], x + w), max(g[3], y + ht)]
        else:
            groups.append([x, y, x + w, y + ht])
    x1, top, x2, bottom = groups[-1]
    if x2 - x1 > 0.85 * gh or bottom - top > 1.15 * gh:  # the digit merged with its frame: cut it away
        cut = int(0.22 * gh)
        x1, top, x2, bottom = x1 + cut, top + cut, x2 - cut, bottom - cut
    m = max(1, int(0.06 * gh))
    inner = crop[max(0, top - m):bottom + m, max(0, x1):x2]
    if inner.shape[0] < 4 or inner.shape[1] < 2:
        return None
    edge = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    bg = np.median(edge.reshape(len(edge), -1), axis=0).tolist()
    py, px = inner.shape[0] // 3, inner.shape[0] // 2
    out = cv2.copyMakeBorder(inner, py, py, px, px, cv2.BORDER_CONSTANT, value=bg)
    return cv2.resize(out, (max(1, round(out.shape[1] * 48 / out.shape[0])), 48), interpolation=cv2.INTER_CUBIC)
