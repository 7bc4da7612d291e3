"""Serving several models on one small box: a model repository, a memory budget, hot updates,
A/B tests and a KServe v2 HTTP server.

| module | what it does |
|---|---|
| ``repository`` | ``REPO/NAME/VERSION/`` on disk: configs, sha256 checks, immutable versions, uploads |
| ``memory`` | lazy loads within a budget, measured footprints, LRU eviction, shared weights and threads |
| ``protocol`` | KServe v2 JSON (and binary) tensors ⇄ numpy, with validation |
| ``swap`` | which version serves; hot updates with checks; the repository watcher |
| ``ab`` | A/B routing, per-variant statistics, the statistical report |
| ``metrics`` | Prometheus metrics |
| ``server`` | the FastAPI app and ``run`` (uvicorn) |

FastAPI and uvicorn are imported only by ``server``.
"""

from edgedeploy.serving.memory import MemoryManager
from edgedeploy.serving.repository import ModelConfig, Repository

__all__ = ["MemoryManager", "ModelConfig", "Repository"]
