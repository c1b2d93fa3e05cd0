"""The console's application factory: it only wires things up."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

from passerelle.portal.limits import Limiter
from passerelle.radius import reach

from . import (
    access,
    account,
    api,
    auth,
    boxes,
    boxsync,
    enrol,
    formats,
    live,
    manage_companies,
    manage_people,
    manage_sites,
    reports,
)
from .settings import ConsoleSettings
from .state import KEY, Console, Disconnect

log = logging.getLogger("passerelle.portal")

HERE = Path(__file__).parent

# Scripts from the console itself only (the live view's refresher); no
# inline script or style, nothing from another origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class _Sessions(SecureCookieSessionInterface):
    # Secure whenever the request came over HTTPS (directly, or through a
    # proxy that says so when behind_proxy is set).
    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _error(exc: HTTPException) -> tuple[str, int] | tuple[Response, int]:
    if request.path.startswith(api.PREFIX + "/"):
        return api.from_http(exc)  # JSON for the API, even before its routes
    if isinstance(exc, CSRFError):
        message = "The form had expired or was not ours: reload the page and try again."
    else:
        message = exc.description or ""
    code = exc.code or 500
    return render_template("error.html", title=f"{code} {exc.name}", message=message), code


def _home() -> BaseResponse:
    return redirect(url_for("live.index"))


def create_app(factory: sessionmaker[Session], *,
               settings: ConsoleSettings | None = None, secret_key: bytes | None = None,
               clock: Callable[[], float] = time.time,
               disconnect: Disconnect = reach.disconnect_once,
               behind_proxy: bool = False) -> Flask:
    """The console on the centre's database (``factory``); ``disconnect``
    sends a Disconnect-Request (RFC 5176) once and waits for the box's
    answer (the outbox sends it again)."""
    settings = settings or ConsoleSettings()
    app = Flask("passerelle.portal.console", static_folder=str(HERE / "static"),
                template_folder=str(HERE / "templates"))
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_NAME="console_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=16 * 1024,
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        MAX_FORM_PARTS=20,
        # Referrer-Policy no-referrer: browsers send no Referer for the strict
        # HTTPS check to look at; the token and SameSite=Strict suffice.
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_TIME_LIMIT=int(settings.max_session),
        WTF_I18N_ENABLED=False,
    )
    app.session_interface = _Sessions()
    app.extensions[KEY] = Console(
        settings=settings, factory=factory, clock=clock, disconnect=disconnect,
        by_login=Limiter(settings.login_failures, settings.login_window),
        by_address=Limiter(settings.address_failures, settings.address_window))
    # Access first: no other hook (not even the CSRF check) runs for a
    # request the operator may not make.
    access.install(app)
    app.before_request(manage_people.allow_upload)  # before the CSRF check reads the form
    csrf = CSRFProtect(app)
    csrf.exempt(enrol.bp)  # JSON from a box, not a browser's form
    api.install(app, csrf)
    app.register_blueprint(auth.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(boxes.bp)
    app.register_blueprint(enrol.bp)
    app.register_blueprint(manage_companies.bp)
    app.register_blueprint(manage_people.bp)
    app.register_blueprint(manage_sites.sites_bp)
    app.register_blueprint(manage_sites.gateways_bp)
    boxsync.install(app)  # the boxes' signed channel: no sign-in, no CSRF
    app.register_blueprint(reports.bp)
    app.register_blueprint(account.bp)
    app.add_url_rule("/", "home", _home)
    formats.install(app)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, _error)
    access.check_complete(app)
    if behind_proxy:
        # One proxy in front (TLS): trust its X-Forwarded-For and -Proto only.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    return app
