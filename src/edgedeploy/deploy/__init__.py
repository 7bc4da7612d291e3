"""Deployment: the seed's YAML, the auto-tuner, the deployment directory and its manifest, doctor.

- :mod:`config` — the YAML, typed and validated once (units via :mod:`edgedeploy.units`).
- :mod:`tuner` — search engine x precision x threads x batch by measuring; prune; choose.
- :mod:`manifest` — write a deployment directory atomically; verify it before running.
- :mod:`runtime` — run a verified deployment with its monitoring.
- :mod:`doctor` — the seed's troubleshooting table, automated, with measured evidence.
"""

from edgedeploy.deploy.config import DeploymentConfig, load, parse

__all__ = ["DeploymentConfig", "load", "parse"]
