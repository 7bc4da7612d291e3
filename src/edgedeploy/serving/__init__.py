"""Serving several models on one small box: a model repository, a memory budget, hot updates,
A/B tests and a KServe v2 HTTP server.

| module | what it does |
|---|---|
| ``repository`` | ``REPO/NAME/VERSION/`` on disk: configs, sha256 checks, signatures, immutable versions, uploads |
| ``state`` | durable verdicts (accepted/rejected/quarantined), serving versions, A/B config |
| ``memory`` | lazy loads within a budget, measured footprints, LRU eviction, shared weights and threads |
| ``protocol`` | KServe v2 JSON (and binary) tensors ⇄ numpy, with validation |
| ``swap`` | which version serves; hot updates with checks; the repository watcher (watchfiles) |
| ``ab``, ``ab_control`` | A/B routing, per-variant statistics, the statistical report; start/end/restore |
| ``metrics`` | Prometheus metrics, Triton statistics |
| ``model_server`` | the server without a transport: routing, limits, uploads, metadata |
| ``auth`` | roles and tokens (HTTP middleware, gRPC check) |
| ``server``, ``slow_clients`` | the FastAPI app and ``run`` (uvicorn, TLS, header deadline) |
| ``grpc_service``, ``kserve_v2`` | the KServe v2 gRPC service and its generated stubs |

FastAPI and uvicorn are imported only by ``server`` and ``slow_clients``; grpcio by ``grpc_service``.
"""

from edgedeploy.serving.memory import MemoryManager
from edgedeploy.serving.repository import ModelConfig, Repository

__all__ = ["MemoryManager", "ModelConfig", "Repository"]
