"""Video analytics pipelines: a source, concurrent stages and sinks, defined in YAML or in Python.

>>> from edgedeploy import pipelines
>>> report = pipelines.run_config("examples/pipelines/gate.yaml")      # as `edgedeploy pipeline`
>>> p = pipelines.Pipeline(pipelines.VideoSource("gate.mp4", realtime=True), pipelines.gate.gate_stages())
>>> p.run().events

Folders of the package: ``runtime`` (threads, bounded queues, drop policy, metrics),
``sources`` (PyAV video/streams with reconnect, cameras, image folders), ``sinks`` (JSON lines,
MQTT with a spool, webhooks, annotated video), ``config`` (typed YAML), ``gate`` (container
codes), ``ocr`` (det → cls → rec), ``camera`` (the seed's EdgeInferenceSystem), ``gate_video``
(generated gate videos with ground truth).
"""

from edgedeploy.pipelines.runtime import (Frame, FrameQueue, FunctionStage, Pipeline, PipelineMetrics,
                                          PipelineReport, Sink, Stage)
from edgedeploy.pipelines.sources import ArraySource, CameraSource, ImageFolderSource, VideoSource, open_source

__all__ = ["ArraySource", "CameraSource", "Frame", "FrameQueue", "FunctionStage", "ImageFolderSource", "Pipeline",
           "PipelineMetrics", "PipelineReport", "Sink", "Stage", "VideoSource", "open_source", "run_config"]


def run_config(path, **kwargs):
    """Load a pipeline YAML and run it: see :func:`edgedeploy.pipelines.config.run_config`."""
    from edgedeploy.pipelines.config import run_config as _run

    return _run(path, **kwargs)
