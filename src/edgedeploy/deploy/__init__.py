"""Deployment: the seed's YAML, the auto-tuner, the deployment directory and its manifest, doctor.

- :mod:`config` — the YAML, typed and validated once (units via :mod:`edgedeploy.units`).
- :mod:`tuner` — search :class:`~edgedeploy.plan.DeploymentPlan` s (engine x precision x threads x
  batch, every engine option) by measuring; prune; choose by rules that do not flip.
- :mod:`manifest` — write a deployment directory atomically, with the chosen plan; verify it before running.
- :mod:`runtime` — open a verified deployment's plan (:func:`~edgedeploy.deploy.runtime.open_plan`) and
  run it with its monitoring.
- :mod:`doctor` — the seed's troubleshooting table, automated, with measured evidence.
- :mod:`choice` — ``engine: auto`` for one model: the plan measured fastest here, cached per machine and model digest.
"""

from edgedeploy.deploy.config import DeploymentConfig, load, parse

__all__ = ["DeploymentConfig", "load", "parse"]
