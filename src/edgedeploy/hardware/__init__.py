"""Hardware: the edge boxes we can choose between, and what a model would do on one we do not have.

- :mod:`profiles` — the SPEC.md devices (published figures with sources) and this machine (probed).
- :mod:`estimate` — per-operator roofline latency/memory, its efficiency calibrated here.
- :mod:`published` — the published latencies the estimator is checked against.
- :mod:`recommend` — rank devices for a model by the seed's three criteria.
- :mod:`targets` — deployment targets: a device plus its ISA and the runtimes x precisions that run there.
"""

from edgedeploy.hardware.profiles import DEVICES, HardwareProfile, all_profiles, get, local, names
from edgedeploy.hardware.targets import TARGETS, Target, target

__all__ = ["DEVICES", "TARGETS", "HardwareProfile", "Target", "all_profiles", "get", "local", "names", "target"]
