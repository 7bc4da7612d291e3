"""Video analytics pipelines: a source, concurrent stages and sinks, defined in YAML or in Python.

>>> from edgedeploy import pipelines
>>> report = pipelines.run_config("examples/pipelines/gate.yaml")      # as `edgedeploy pipeline`
>>> p = pipelines.Pipeline(pipelines.VideoSource("gate.mp4", realtime=True), pipelines.gate.gate_stages())
>>> p.run().events

Modules of the package: ``stage`` (the contract: Frame, Stage, Sink), ``runtime`` (the
Pipeline: threads joined by ``queues`` with a drop policy, measured by ``metrics``), ``stages``
(resize, rules), ``sources`` (PyAV video/streams with reconnect, cameras, image folders),
``models`` (how a stage opens its model: a deployment directory, or ``engine: auto``, the
measured choice), ``budget`` (the frame interval shared among stages, reported per stage),
``sinks`` (JSON lines, webhooks, annotated video), ``mqtt`` (MQTT with a spool), ``config`` (typed
YAML and the table of stage and sink types), ``ocr`` (det → cls → rec), ``gate`` (container codes:
reading, check digit, tracking), ``camera`` (the seed's EdgeInferenceSystem). Gate videos with
ground truth are made by :mod:`edgedeploy.datasets.gate_video`.
"""

from edgedeploy.pipelines.budget import Budget
from edgedeploy.pipelines.metrics import PipelineMetrics
from edgedeploy.pipelines.queues import FrameQueue
from edgedeploy.pipelines.runtime import Pipeline, PipelineReport
from edgedeploy.pipelines.stage import Frame, FunctionStage, Sink, Stage
from edgedeploy.pipelines.sources import ArraySource, CameraSource, ImageFolderSource, VideoSource, open_source

__all__ = ["ArraySource", "Budget", "CameraSource", "Frame", "FrameQueue", "FunctionStage", "ImageFolderSource", "Pipeline",
           "PipelineMetrics", "PipelineReport", "Sink", "Stage", "VideoSource", "open_source", "run_config"]


def run_config(path, **kwargs):
    """Load a pipeline YAML and run it: see :func:`edgedeploy.pipelines.config.run_config`."""
    from edgedeploy.pipelines.config import run_config as _run

    return _run(path, **kwargs)
