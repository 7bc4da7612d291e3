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

Modules: ``reading`` (grouping lines into candidates, :class:`ReadStage`), ``check_digit``
(the check digit by likelihood, or read again alone), ``tracking`` (:class:`TrackerStage`).
Scoring events against a gate video's truth is :func:`edgedeploy.evaluation.gate.evaluate_events`;
the videos are made by :mod:`edgedeploy.datasets.gate_video`.

    >>> from edgedeploy.pipelines import Pipeline, VideoSource, gate
    >>> report = Pipeline(VideoSource("gate.mp4", realtime=True), gate.gate_stages()).run()
    >>> [e["code"] for e in report.events]
"""

from __future__ import annotations

from edgedeploy.pipelines.gate.reading import Candidate, ReadStage, group_lines
from edgedeploy.pipelines.gate.tracking import Track, TrackerStage
from edgedeploy.pipelines.ocr import DetectStage
from edgedeploy.pipelines.stage import Stage

__all__ = ["GATE_DET_OPTIONS", "Candidate", "ReadStage", "Track", "TrackerStage", "gate_stages", "group_lines"]

GATE_DET_OPTIONS = {"limit_type": "max", "limit_side_len": 320, "thresh": 0.2, "box_thresh": 0.3}


def gate_stages(*, engine: str = "auto", det_threads: int = 1, rec_threads: int = 1, snapshots: str | None = None,
                reduced_precision: bool = True, skip_converged: bool = True, batch_crops: bool = True,
                read_every: int = 1, **tracker_options) -> list[Stage]:
    """detect (downscaled to 320 px) → read (skipping converged tracks) → track (vote, emit).

    engine: ``auto`` (measured per machine and model, :mod:`edgedeploy.deploy.choice`) or a named
    engine. The switches that keep the pipeline within its frame interval, each on by default
    except ``read_every`` (1: read every frame; 0: as often as the read stage's budget allows):
    ``reduced_precision`` (INT8/BF16 candidates for ``engine: auto``), ``skip_converged``,
    ``batch_crops``, ``read_every`` (see :class:`ReadStage`).
    """
    return [DetectStage(engine=engine, threads=det_threads, reduced_precision=reduced_precision, **GATE_DET_OPTIONS),
            ReadStage(engine=engine, threads=rec_threads, reduced_precision=reduced_precision,
                      skip_converged=skip_converged, batch_crops=batch_crops, every=read_every),
            TrackerStage(snapshots=snapshots, **tracker_options)]
