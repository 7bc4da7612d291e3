"""Scoring a gate pipeline's container events against the truth of a generated gate video
(:mod:`edgedeploy.datasets.gate_video`)."""

from __future__ import annotations

from edgedeploy.evaluation.metrics import container_accuracy

def evaluate_events(events: list[dict], truth) -> dict:
    """Match container events to the truth of a gate video and score them.

    Each container is matched to an event overlapping the frames it was in view: one with its
    own code if there is one, else the unused event overlapping most; its predicted code is that
    event's (None when unmatched).
    Returns :func:`~edgedeploy.evaluation.metrics.container_accuracy` fields plus
    ``extra_events`` (events matched to no container) and ``errors`` (what went wrong where).
    """
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
