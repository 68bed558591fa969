"""The web UI's logins: a login with an API token, a cookie, CSRF tokens, a rate limit.

``POST /login`` checks a token as bearer authentication does and, when it holds, keeps a
login server-side (a random id → the token's name and scope, an expiry, a CSRF token)
and gives the browser its id in a cookie: HttpOnly (no script reads it), SameSite=Strict
(no other site's page sends it), Secure over TLS, Path=/. The API takes that cookie as it
takes a bearer token; a request that changes state with it (any method but GET and HEAD)
must also carry the login's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``): a synchronizer token, compared in constant time. Bearer requests need
none (a browser never adds an Authorization header by itself).

Logins live in the server's memory: a restart logs everyone out. A revoked token ends
its logins at their next request (its name is looked up each time).
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pentora_plugins.server._auth import AuthError
from pentora_plugins.server._tokens import Principal, TokenStore

COOKIE = "pentora_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
TTL = 8 * 3600.0  # seconds a login lasts: a working day
WINDOW = 60.0  # seconds over which failed logins are counted (login_attempts per minute)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Login:
    id: str
    name: str
    scope: str
    csrf: str
    expires: float


@dataclass
class Logins:
    """The live logins of one server, and the failed logins of each client address."""

    login_attempts: int = 5
    ttl: float = TTL
    logins: dict[str, Login] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, principal: Principal) -> Login:
        login = Login(secrets.token_urlsafe(32), principal.name, principal.scope,
                      secrets.token_urlsafe(32), time.monotonic() + self.ttl)
        with self._lock:
            self._expire()
            self.logins[login.id] = login
        return login

    def get(self, login_id: str) -> Login | None:
        with self._lock:
            login = self.logins.get(login_id)
            if login is not None and login.expires <= time.monotonic():
                del self.logins[login_id]
                return None
            return login

    def end(self, login_id: str) -> None:
        with self._lock:
            self.logins.pop(login_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self.logins.items() if s.expires <= now]:
            del self.logins[key]

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None while it is under the limit."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self.login_attempts:
                return None
            return max(1, math.ceil(recent[0] + WINDOW - time.monotonic()))

    def failed(self, client: str) -> None:
        with self._lock:
            recent = self._recent(client)
            recent.append(time.monotonic())
            self.failures[client] = recent

    def _recent(self, client: str) -> deque[float]:
        recent = self.failures.get(client, deque())
        while recent and recent[0] <= time.monotonic() - WINDOW:
            recent.popleft()
        if not recent:
            # no entry for an address without a recent failure: the table stays as large as
            # the set of clients failing right now
            self.failures.pop(client, None)
        return recent


def logins_of(app: Any) -> Logins:
    return app.extensions["pentora_logins"]  # type: ignore[no-any-return]


def current(request: Any) -> Login | None:
    """The request's live login (by its cookie), or None."""
    from flask import current_app

    login_id = request.cookies.get(COOKIE)
    if not login_id:
        return None
    return logins_of(current_app).get(login_id)


def check_csrf(request: Any, login: Login) -> None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.mimetype in ("application/x-www-form-urlencoded",
                                               "multipart/form-data"):
        given = request.form.get(CSRF_FIELD)
    if not given or not hmac.compare_digest(given.encode(), login.csrf.encode()):
        raise AuthError(403, f"a request with the login cookie that changes something needs "
                             f"the login's CSRF token (form field '{CSRF_FIELD}' or header "
                             f"'{CSRF_HEADER}'); reload the page to get it")


def cookie_auth(request: Any, tokens: TokenStore) -> Principal | None:
    """The principal of the request's login cookie (an authenticator of ``_auth``)."""
    if not request.cookies.get(COOKIE):
        return None
    login = current(request)
    if login is None:
        raise AuthError(401, "the login has expired or ended; log in again at /ui/login")
    if not any(t["name"] == login.name for t in tokens.list()):
        raise AuthError(401, f"token '{login.name}' was revoked; log in again with another")
    if request.method not in SAFE_METHODS:
        check_csrf(request, login)
    return Principal(login.name, login.scope)
