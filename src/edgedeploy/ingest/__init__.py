"""Model ingest: ONNX files, Paddle inference models (native or via paddle2onnx), PyTorch modules."""

from edgedeploy.ingest.model import Model, load_model
from edgedeploy.ingest.torch_export import from_torch

__all__ = ["Model", "from_torch", "load_model"]
