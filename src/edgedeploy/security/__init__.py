"""Keys and signatures: Ed25519 key pairs (PEM) and signed directories (``manifest.json`` + ``manifest.sig``)."""
