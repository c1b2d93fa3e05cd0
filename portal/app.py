"""The captive portal's application factory: it only wires things up."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from . import views
from .limits import Limiter
from .settings import LANGUAGES, PortalSettings
from .state import LANG_COOKIE, Control, Portal

log = logging.getLogger("passerelle.portal")

HERE = Path(__file__).parent

# 'none' for scripts: the portal works without JavaScript; the QR code is
# inline SVG markup (attributes only, no style attribute).
CSP = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class _Sessions(SecureCookieSessionInterface):
    # One app serves HTTP and HTTPS: the cookie is Secure when the request
    # was, under its own name (a browser refuses to let plain HTTP overwrite
    # a Secure cookie of the same name, which would break the CSRF check).
    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def get_cookie_name(self, app: Flask) -> str:
        name = super().get_cookie_name(app)
        return f"{name}_tls" if request.is_secure else name


def select_locale() -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "static":
        # Pages carry personal keys, and OSes must not cache a probe's answer.
        response.headers["Cache-Control"] = "no-store"
    return response


def create_app(settings: PortalSettings, control: Control, *, secret_key: bytes | None = None,
               clock: Callable[[], float] = time.monotonic) -> Flask:
    """The portal for one site; ``control`` is the daemon's control client."""
    app = Flask(__name__, static_folder=str(HERE / "static"),
                template_folder=str(HERE / "templates"))
    secret = secret_key or secrets.token_bytes(32)
    app.config.update(
        SECRET_KEY=secret,
        SESSION_COOKIE_NAME="portal_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=16 * 1024,
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        MAX_FORM_PARTS=20,
        # Referrer-Policy no-referrer means browsers send no Referer, which
        # the strict HTTPS check would demand; the token and SameSite suffice.
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_TIME_LIMIT=3600,
        # Every message is our own, translated by our catalogue: no per-request
        # load of WTForms' catalogue.
        WTF_I18N_ENABLED=False,
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=str(HERE / "translations"),
    )
    app.session_interface = _Sessions()
    app.extensions["passerelle.portal"] = Portal(
        settings=settings, control=control, secret=secret,
        by_mac=Limiter(settings.mac_failures, settings.mac_window),
        by_login=Limiter(settings.login_failures, settings.login_window), clock=clock)
    # The blueprint first: its hook sends captive clients' requests to the
    # portal before the CSRF check would refuse their POSTs.
    app.register_blueprint(views.bp)
    CSRFProtect(app)
    Babel(app, locale_selector=select_locale)
    # The API's path is the configured api_url's (DHCP option 114 announces it).
    app.add_url_rule(settings.api_path, "captive_api", views.captive_api_view)
    app.after_request(_headers)
    views.register_errors(app)
    return app
