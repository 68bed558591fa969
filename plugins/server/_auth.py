"""Who a request comes from: a bearer token (``Authorization: Bearer pnt_…``).

``AUTHENTICATORS`` is tried in order, each returning a ``Principal`` or None; the web
UI's session cookie is meant to be added there. A request with credentials that do not
check out is refused (401), as is one with none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pentora_plugins.server._tokens import Principal, TokenStore


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def bearer(request: Any, tokens: TokenStore) -> Principal | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise AuthError(401, "the Authorization header must be 'Bearer TOKEN'")
    principal = tokens.check(token.strip())
    if principal is None:
        raise AuthError(401, "the token is not valid (revoked, or mistyped); create one with "
                             "`pentora server token create --scope read|scan|admin`")
    return principal


AUTHENTICATORS: list[Callable[[Any, TokenStore], Principal | None]] = [bearer]


def authenticate(request: Any, tokens: TokenStore, scope: str) -> Principal:
    """The request's principal, allowed ``scope``; ``AuthError`` (401, 403) else."""
    for authenticator in AUTHENTICATORS:
        principal = authenticator(request, tokens)
        if principal is not None:
            if not principal.allows(scope):
                raise AuthError(403, f"token '{principal.name}' has scope '{principal.scope}'; "
                                     f"this needs '{scope}'")
            return principal
    raise AuthError(401, "this needs a token: send 'Authorization: Bearer TOKEN' (create one "
                         "with `pentora server token create`)")
