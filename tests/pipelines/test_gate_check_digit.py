"""The check digit weighed by the recogniser's likelihood (CTC), per read and pooled by the
tracker, and the crops the read stage cuts: the causes of the gate benchmark's misses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgedeploy.datasets.iso6346 import CodeRead, check_digit, parse_container_code
from edgedeploy.pipelines.gate.check_digit import CheckDigitScorer, ctc_log_likelihood, read_by_likelihood
from edgedeploy.pipelines.gate import Candidate, ReadStage, TrackerStage


def _brute_force(probs: np.ndarray, label: list[int]) -> float:
    """log P(label) by summing every path that collapses to it (blank = 0)."""
    total = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=len(probs)):
        kept = [k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k)]
        if kept == label:
            total += float(np.prod([probs[t, k] for t, k in enumerate(path)]))
    return np.log(total)


@pytest.mark.parametrize("label", [[1], [1, 2], [1, 1], [2, 3, 1], [1, 1, 1], [3, 2, 3, 2, 3]])
def test_ctc_log_likelihood_is_the_sum_over_all_paths(label):
    probs = np.random.default_rng(len(label)).dirichlet(np.ones(4), size=5)
    rep = np.array([[False] + [label[i] == label[i - 1] for i in range(1, len(label))]])
    got = ctc_log_likelihood(probs[:, 0], probs[:, label][None], rep)[0]
    want = _brute_force(probs, label) if len(label) <= 5 else -np.inf
    assert got == pytest.approx(want, abs=1e-9) if np.isfinite(want) else got < -20  # 5 labels need 5+4 steps


# --- the scorer on a line whose per-step probabilities we write down --------------------------

CHARS = ["", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"0123456789", "⓪", "⑨", "回", " "]


def _line_probs(text: str, tail: dict[str, float]) -> np.ndarray:
    """Per-step probabilities of a line reading ``text`` clearly (each character one step,
    blanks between), then 3 steps where the check digit is: ``tail`` spread over classes."""
    idx = {c: i for i, c in enumerate(CHARS)}
    steps = []
    for ch in text:
        steps += [{ch: 0.98}, {"": 0.98}]
    steps += [tail, tail, {"": 0.98}, {"": 0.98}]
    probs = np.full((len(steps), len(CHARS)), 1e-4)
    for t, d in enumerate(steps):
        for ch, p in d.items():
            probs[t, idx[ch]] = p
        rest = 1.0 - sum(d.values())
        probs[t, 0] += max(rest, 0.0)
    return probs / probs.sum(1, keepdims=True)


def test_scorer_weighs_the_check_digit_the_greedy_read_drops():
    scorer = CheckDigitScorer(CHARS)
    # The framed 3 is read as a space (blank and space lead), with 3 the likeliest digit.
    probs = _line_probs("CSQU 305438", {" ": 0.5, "3": 0.2, "8": 0.01})
    head = scorer.greedy(probs)
    assert "".join(CHARS[k] for k in head) == "CSQU 305438 "  # greedy: no check digit
    assert not parse_container_code("CSQU 305438 ").valid
    (prefix, changed, post), = scorer.evidence([probs])
    assert prefix == "CSQU305438" and changed == ()
    assert int(np.argmax(post)) == 3 and np.exp(post).sum() == pytest.approx(1.0)
    read = read_by_likelihood("CSQU305438", [(prefix, changed, post)], margin=2.0)
    assert read.code == "CSQU3054383" and read.corrected == (10,)
    # The likeliest digit is not the one the serial needs: no code, whatever the margin.
    probs = _line_probs("CSQU 305438", {" ": 0.5, "4": 0.2})
    ev = scorer.evidence([probs])
    assert int(np.argmax(ev[0][2])) == 4
    assert not read_by_likelihood("CSQU305438", ev, margin=0.0).valid
    # Too close to call (3 and 8 alike): no code.
    probs = _line_probs("CSQU 305438", {" ": 0.5, "3": 0.1, "8": 0.1})
    assert not read_by_likelihood("CSQU305438", scorer.evidence([probs]), margin=2.0).valid


def test_scorer_counts_circled_digits_but_not_as_the_only_reading():
    scorer = CheckDigitScorer(CHARS)
    # A framed 0 read as ⓪: the circled reading carries it.
    post = scorer.evidence([_line_probs("CSQU 305438", {"⓪": 0.6, "3": 0.01})])[0][2]
    assert int(np.argmax(post)) == 0
    # A framed stencil 0 read as ⑨ by the circled reading and as 0 by the plain one: the even
    # mixture of the two keeps 0 ahead (the circled reading alone would say 9, 6 to 1).
    post = scorer.evidence([_line_probs("CSQU 305438", {"⑨": 0.3, "0": 0.05, "9": 0.001})])[0][2]
    assert int(np.argmax(post)) == 0 and post[9] > np.log(0.3)  # 9 a close second


def test_scorer_uses_the_last_row_of_a_two_row_code():
    scorer = CheckDigitScorer(CHARS)
    owner = _line_probs("CSQU", {"": 0.98})
    serial = _line_probs("305438", {" ": 0.4, "3": 0.3})
    (prefix, _, post), = scorer.evidence([owner, serial])
    assert prefix == "CSQU305438" and int(np.argmax(post)) == 3
    assert scorer.evidence([serial]) == []  # no owner code: nothing to complete


# --- the tracker pools the check digit over frames ----------------------------------------------

def _post(digit: int, margin: float) -> np.ndarray:
    """A read's check-digit log-posterior: ``digit`` ahead of the others by ``margin``."""
    logits = np.zeros(10)
    logits[digit] = margin
    return logits - np.logaddexp.reduce(logits)


def _cand(x: float, read: CodeRead | None) -> Candidate:
    box = np.array([x, 100, x + 200, 140], np.float32)
    return Candidate(box, [box], text=read.raw if read else "", score=0.95, read=read)


def _partial(raw: str, digit: int, margin: float) -> CodeRead:
    """A read of owner + serial whose check digit was missed, with its likelihood evidence."""
    return CodeRead(None, raw, reason="missed", evidence=((raw[:10], _post(digit, margin)),))


def test_tracker_pools_a_weak_check_digit_over_frames():
    head = "LIFZ915444"
    assert check_digit(head) == 0
    t = TrackerStage(max_age=2)
    for f in range(12):  # no frame reads it well enough alone (margin 1.2 < 2), every one favours 0
        t.update(f, [_cand(300, _partial(head, 0, 1.2))])
    (e,) = t.flush()
    assert e["code"] == "LIFZ9154440" and e["decided_by"] == "check-digit likelihood"
    assert 0 < e["confidence"] <= 1


def test_tracker_does_not_pool_frames_that_disagree_or_too_few():
    head = "UGGU155960"  # needs 0
    t = TrackerStage(max_age=2)
    for f in range(30):  # leaning 1 a little more often than 0, with many weak frames
        t.update(f, [_cand(300, _partial(head, 1 if f % 3 else 0, 0.8))])
    assert t.flush()[0]["code"] is None
    t = TrackerStage(max_age=2)
    for f, read in enumerate([_partial(head, 0, 5.0), None, _partial(head, 0, 5.0)]):  # strong, but 2 reads
        t.update(f, [_cand(300, read)])
    assert t.flush()[0]["code"] is None
    t = TrackerStage(max_age=2)
    for f in range(10):  # consistent, but the digit the serial needs is not the likeliest
        t.update(f, [_cand(300, _partial(head, 7, 3.0))])
    assert t.flush()[0]["code"] is None


def test_pooled_check_digit_picks_the_serial_it_confirms_over_a_more_frequent_misread():
    # A low-contrast 0 in the serial read as 8 in most frames; the check digit (8) fits only
    # the serial with the 0, which was read in fewer frames: that one is the code.
    right, wrong = "HDFU240334", "HDFU248334"
    assert check_digit(right) == 8 and check_digit(wrong) == 3
    t = TrackerStage(max_age=2)
    for f in range(20):
        raw = right if f % 4 == 0 else wrong
        t.update(f, [_cand(300, _partial(raw, 8, 1.5))])
    (e,) = t.flush()
    assert e["code"] == "HDFU2403348" and e["decided_by"] == "check-digit likelihood"
    t = TrackerStage(max_age=2)
    for f in range(20):  # the confirmed serial read once only: not enough support
        t.update(f, [_cand(300, _partial(right if f == 0 else wrong, 8, 1.5))])
    assert t.flush()[0]["code"] is None


def test_pooled_code_confirms_the_track_so_reading_stops():
    t = TrackerStage(max_age=5)
    for f in range(2):
        t.update(f, [_cand(300, _partial("LIFZ915444", 0, 1.5))])
    assert not t.confirmed_boxes(2)
    t.update(2, [_cand(300, _partial("LIFZ915444", 0, 1.5))])
    assert t.confirmed_boxes(3)


# --- one event per container ------------------------------------------------------------------

def _box_cand(box, code: str | None) -> Candidate:
    box = np.array(box, np.float32)
    return Candidate(box, [box], text=code or "", score=0.95, read=parse_container_code(code) if code else None)


def test_a_code_whose_owner_row_comes_and_goes_stays_one_track():
    # Owner over serial; in some frames the owner row is not detected and the candidate is the
    # serial row alone (half as tall): the same code, not a second container.
    t = TrackerStage(max_age=3)
    events = []
    for f in range(24):
        x = 500 - 8 * f
        if f % 4 in (1, 2):
            cand = _box_cand([x, 150, x + 200, 190], "305438 3")  # the serial row alone
        else:
            cand = _box_cand([x, 100, x + 200, 190], "CSQU 305438 3")
        events += t.update(f, [cand])
        assert len(t.tracks) == 1, f
    events += t.flush()
    assert [e["code"] for e in events] == ["CSQU3054383"]
    assert events[0]["reads"] == 24


def test_a_piece_of_a_read_code_followed_alone_is_not_an_unreadable_container():
    t = TrackerStage(max_age=2, min_hits=3)
    events = []
    for f in range(6):  # the container, read
        events += t.update(f, [_box_cand([300 - 10 * f, 100, 500 - 10 * f, 140], "QIKJ 801844 0")])
    for f in range(6, 12):  # at the frame's edge its serial and check digit, followed on their own,
        text = "361" if f == 8 else "801844 0"  # once misread in part: a few glyphs make no container
        events += t.update(f, [_box_cand([40, 160, 140, 190], text)])
    events += t.flush()
    assert [e["code"] for e in events] == ["QIKJ8018440"]
    # A container next to it that could not be read is still reported.
    t = TrackerStage(max_age=2, min_hits=3)
    for f in range(6):
        t.update(f, [_box_cand([300 - 10 * f, 100, 500 - 10 * f, 140], "QIKJ 801844 0"),
                     _box_cand([40, 160, 140, 190], "TBHU 545787")])
    assert sorted(e["code"] or "" for e in t.flush()) == ["", "QIKJ8018440"]


# --- crops --------------------------------------------------------------------------------------

def test_only_the_last_row_is_widened_for_the_check_digit():
    stage = ReadStage(extend=1.5, pad=0.0)
    image = np.zeros((360, 640, 3), np.uint8)
    owner = np.array([300, 140, 380, 180], np.float32)  # 40 px tall
    serial = np.array([300, 190, 450, 230], np.float32)
    cand = Candidate(np.array([300, 140, 450, 230], np.float32), [owner, serial])
    top, bottom = stage._crops(image, cand)
    assert top.shape[1] == 80  # the owner code alone: widened, it takes in the serial's end below
    assert bottom.shape[1] == 150 + 60  # the serial and 1.5 heights for a framed check digit


def _frame_with_line(text: str):
    """A frame with one light-on-dark painted line and its detected box."""
    import cv2

    from edgedeploy.pipelines.stage import Frame

    img = np.full((360, 640, 3), 60, np.uint8)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.2, 3)
    cv2.putText(img, text, (100, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (230, 230, 230), 3)
    x1, y1, x2, y2 = 95, 200 - h - 5, 100 + w + 5, 200 + base + 2
    frame = Frame(0, img)
    frame.boxes = np.array([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]], np.float32)
    return frame


@pytest.mark.integration
def test_read_stage_reads_again_only_what_a_second_read_can_mend():
    stage = ReadStage(tracker=None)
    stage.open(None)
    # The check digit is read clearly (4) and is not the one the serial needs (3): the serial
    # is misread or the code is wrong; reading the digit again cannot help. One inference.
    frame = stage.process(_frame_with_line("CSQU 305438 4"))
    (cand,) = frame.candidates
    assert not cand.read.valid and cand.read.raw == "CSQU3054384"
    prefix, post = cand.read.evidence[0]
    assert prefix == "CSQU305438" and int(np.argmax(post)) == 4
    assert stage.reads == 1
    # No check digit to be seen: weighed (no digit stands out), then the last glyphs read
    # alone; no third inference with frames erased.
    stage.reads = 0
    (cand,) = stage.process(_frame_with_line("CSQU 305438")).candidates
    assert not cand.read.valid and stage.reads == 2


# --- on a real gate video ------------------------------------------------------------------------

@pytest.mark.integration
def test_read_stage_reads_a_framed_check_digit_the_greedy_read_misses(tmp_path):
    """Seed 27's 4th container (EZHU8304130): a 0 painted in a tight frame, which the
    recogniser reads as a space in almost every frame; by likelihood, it reads 0."""
    from edgedeploy.pipelines import VideoSource
    from edgedeploy.pipelines.gate import gate_stages
    from edgedeploy.datasets.gate_video import make_gate_video

    truth = make_gate_video(tmp_path / "gate.mp4", containers=4, seed=27)
    c = truth.containers[3]
    assert c.code == "EZHU8304130"
    det, read, _ = gate_stages()
    det.open(None)
    read.open(None)
    read.tracker = None  # read every candidate, every frame
    greedy = likely = frames = 0
    for frame in VideoSource(tmp_path / "gate.mp4").frames():
        if not c.code_first <= frame.index <= c.code_last or frame.index % 2:
            continue
        read.process(det.process(frame))
        reads = [cand for cand in frame.candidates if cand.read is not None and "EZHU" in cand.read.raw]
        if not reads:
            continue
        frames += 1
        greedy += any(parse_container_code(cand.text).code == c.code for cand in reads)
        likely += any(cand.read.code == c.code for cand in reads)
        assert all(cand.read.code in (None, c.code) for cand in reads)  # never a wrong code
    assert frames >= 10
    assert greedy <= 0.2 * frames  # the plain read misses the framed 0 ...
    assert likely >= 0.8 * frames  # ... the likelihood reads it
