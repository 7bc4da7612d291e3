"""Who may call what: two roles, two bearer tokens, checked before any route runs.

======================  ==================================================================
role                    routes
======================  ==================================================================
public                  ``/v2/health/live``, ``/v2/health/ready`` (probes; they reveal nothing)
management              ``/v2/repository/...`` (index, load, unload, upload, admit, memory)
                        and ``/v2/ab/...``: off unless enabled, and then only with the
                        management token
inference               everything else (inference, metadata, config, statistics, metrics):
                        the inference token when one is set (the management token also works)
======================  ==================================================================

Tokens come from a file or an environment variable, never from the command line (where
``ps`` shows them); they are compared with :func:`hmac.compare_digest` and never logged. The same
check serves HTTP (``Authorization: Bearer TOKEN``) and gRPC (``authorization`` metadata).
"""

from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

from edgedeploy.errors import UserError

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
MANAGEMENT_PREFIXES = ("/v2/repository", "/v2/ab")
PUBLIC, INFERENCE, MANAGEMENT = "public", "inference", "management"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def load_token(*, file: str | os.PathLike | None = None, env: str | None = None, what: str = "token") -> str | None:
    """A token from ``file`` (first line) or the environment variable ``env``; None when neither is given."""
    if file is not None:
        p = Path(file)
        if not p.is_file():
            raise UserError(f"{what} file {p} does not exist; write the token (one line) into it")
        token = p.read_text().strip()
        if not token:
            raise UserError(f"{what} file {p} is empty; write the token (one line) into it")
    elif env and os.environ.get(env):
        token = os.environ[env].strip()
    else:
        return None
    if len(token) < 16:
        raise UserError(f"the {what} is {len(token)} characters; use at least 16 (e.g. `openssl rand -hex 24`)")
    return token


def role_of(path: str) -> str:
    if path in PUBLIC_PATHS:
        return PUBLIC
    if any(path == p or path.startswith(p + "/") for p in MANAGEMENT_PREFIXES):
        return MANAGEMENT
    return INFERENCE


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check(role: str, token: str | None, *, management: bool, inference_token: str | None,
          management_token: str | None) -> tuple[int, str] | None:
    """None if a caller presenting ``token`` may use a route of ``role``; else (HTTP status, why)."""
    if role == PUBLIC:
        return None
    if role == MANAGEMENT:
        if not management:
            return 403, "the management API is off; start the server with --enable-management (and a management token)"
        if management_token is None:  # the server refuses to start like this; never allow it by accident
            return 403, "the management API has no token configured"
        if _same(token, management_token):
            return None
        if inference_token is not None and _same(token, inference_token):
            return 403, "the inference token does not allow management; use the management token"
        return 401, "missing or wrong management token; send Authorization: Bearer <management token>"
    if inference_token is None:
        return None
    if _same(token, inference_token) or (management_token is not None and _same(token, management_token)):
        return None
    return 401, "missing or wrong token; send Authorization: Bearer <token>"


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value."""
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class AuthMiddleware:
    """ASGI middleware: every HTTP request passes :func:`check` before routing (so a route added
    later cannot be forgotten); refusals are KServe v2 error bodies."""

    def __init__(self, app, settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        s = self.settings
        refused = check(role_of(scope["path"]), bearer(header), management=s.management,
                        inference_token=s.inference_token, management_token=s.management_token)
        if refused is None:
            return await self.app(scope, receive, send)
        status, why = refused
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="edgedeploy"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps({"error": why}).encode()})
