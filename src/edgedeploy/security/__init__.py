"""Security: Ed25519 keys and signed directories (deployments, repository versions).

``keys``: generate, load, identify and rotate Ed25519 key pairs.
``signing``: ``sign_directory`` / ``verify_directory`` over a manifest that lists every file.
"""

from edgedeploy.security.signing import VerificationError

__all__ = ["VerificationError"]
