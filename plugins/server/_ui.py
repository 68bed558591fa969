"""The web UI: its pages and files (``static/``), the login and logout routes, and the
security headers of every response.

The UI is plain HTML, CSS and JavaScript modules served by this process (no build step,
nothing from another origin), talking to the same ``/api/v1`` routes as any client, with
the login cookie of ``_login`` instead of a bearer token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, redirect, render_template_string, request, send_file
from pentora_plugins.server import _auth
from pentora_plugins.server._login import (
    COOKIE,
    CSRF_FIELD,
    Logins,
    check_csrf,
    cookie_auth,
    current,
    logins_of,
)
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as HttpResponse

HERE = Path(__file__).parent
STATIC = HERE / "static"
LOGIN_PAGE = HERE / "templates" / "login.html"
# the HTML report's policy: nothing from elsewhere, no inline script or style
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


def install(app: Flask, server: Any) -> None:
    """Add the UI's routes, its logins and the security headers to ``app``."""
    app.extensions["pentora_logins"] = Logins(server.config.login_attempts)
    if cookie_auth not in _auth.AUTHENTICATORS:
        _auth.AUTHENTICATORS.append(cookie_auth)  # after bearer: a bearer header wins

    @app.after_request
    def security_headers(response: Response) -> HttpResponse:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        # the HTML report brings its own, stricter policy (its inline parts pinned by hash)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.get("/")
    @app.get("/ui")
    def root() -> HttpResponse:
        return redirect("/ui/", 302)

    @app.get("/ui/")
    def index() -> HttpResponse:
        if current(request) is None:
            return redirect("/ui/login", 302)
        return _file("index.html")

    @app.get("/ui/login")
    def login_page() -> HttpResponse:
        if current(request) is not None:
            return redirect("/ui/", 302)
        return _login_page(200)

    @app.post("/login")
    def login() -> HttpResponse:
        logins = logins_of(current_app)
        client = request.remote_addr or "unknown"
        wait = logins.retry_after(client)
        if wait is not None:
            server.audit.write("login-refused", None, client, reason="rate limit")
            refused = _login_page(429, f"Too many failed logins from your address: try again "
                                       f"in {wait} seconds.")
            refused.headers["Retry-After"] = str(wait)
            return refused
        token = request.form.get("token", "").strip()
        principal = server.tokens.check(token) if token else None
        if principal is None:
            logins.failed(client)
            server.audit.write("login-failed", None, client)
            return _login_page(401, "That token is not valid (mistyped, or revoked). Create one "
                                    "with `pentora server token create --scope read|scan|admin`.")
        login = logins.create(principal)
        server.audit.write("login", principal.name, client)
        response = redirect("/ui/", 303)
        response.set_cookie(COOKIE, login.id, max_age=int(logins.ttl), path="/",
                            secure=request.is_secure, httponly=True, samesite="Strict")
        return response

    @app.post("/logout")
    def logout() -> HttpResponse:
        login = current(request)
        if login is not None:
            try:
                check_csrf(request, login)
            except _auth.AuthError as e:
                return _login_page(e.status, e.message)
            logins_of(current_app).end(login.id)
            server.audit.write("logout", login.name, request.remote_addr)
        response = redirect("/ui/login", 303)
        response.delete_cookie(COOKIE, path="/", secure=request.is_secure, httponly=True,
                               samesite="Strict")
        return response

    @app.get("/ui/me")
    def me() -> HttpResponse:
        """Who is logged in and the CSRF token the pages send with what they change: read
        by the page's script (same origin only: no CORS, and JSON a script tag cannot run)."""
        login = current(request)
        response: Any
        if login is None:
            response = Response('{"error": "not logged in; log in at /ui/login", "problems": []}',
                                status=401, mimetype="application/json")
        else:
            response = current_app.json.response(
                {"name": login.name, "scope": login.scope, "csrf_token": login.csrf})
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/ui/<path:name>")
    def static_file(name: str) -> HttpResponse:
        return _file(name)


def _file(name: str) -> HttpResponse:
    path = safe_join(str(STATIC), name)  # refuses ../ and absolute paths
    if path is None or not Path(path).is_file():
        raise NotFound(f"no UI file '{name}'")
    response = send_file(path, mimetype=TYPES.get(Path(path).suffix, "application/octet-stream"))
    response.headers["Cache-Control"] = "no-cache"
    return response


def _login_page(status: int, error: str | None = None) -> HttpResponse:
    # render_template_string escapes every value: the message is ours, but stays text
    page = render_template_string(LOGIN_PAGE.read_text(encoding="utf-8"), error=error,
                                  csrf_field=CSRF_FIELD)
    return Response(page, status=status, mimetype="text/html")
