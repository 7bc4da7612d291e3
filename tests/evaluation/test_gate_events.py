"""Container events of a gate pipeline scored against a gate video's truth."""

from __future__ import annotations

from edgedeploy.datasets.gate_video import GateContainer, GateTruth
from edgedeploy.evaluation.gate import evaluate_events


def test_evaluate_events_matches_by_frames():
    truth = GateTruth("v", 25, 640, 360, 300, 0, [GateContainer("CSQU3054383", 0, 100, 30, 60),
                                                  GateContainer("MSKU1234565", 90, 200, 120, 150)])
    events = [{"type": "container", "code": "CSQU3054383", "first_frame": 25, "last_frame": 70},
              {"type": "container", "code": None, "first_frame": 118, "last_frame": 160},
              {"type": "container", "code": "ABCU0000000", "first_frame": 250, "last_frame": 260}]
    r = evaluate_events(events, truth)
    assert (r["correct"], r["missing"], r["extra_events"]) == (1, 1, 1)
