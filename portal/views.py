"""The portal's pages, the OS probes and the RFC 8908 API.

Requests whose Host is not the portal's are captive clients' requests that
the box's table DNAT-ed here: probes get their OS's answer once the client
has a session; everything else is sent to the portal, with the way on to
the page first asked for (signed, see origin.py).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as browser
from flask.globals import request_ctx
from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from passerelle.gateway.control import ControlError
from passerelle.refusal import Refusal

from . import captive_api, origin, probes, wifiqr
from .forms import CheckInForm, CheckOutForm, TapForm
from .reasons import REASONS
from .settings import LANGUAGES
from .state import LANG_COOKIE, Portal

log = logging.getLogger("passerelle.portal")

bp = Blueprint("portal", __name__)

LANGUAGE_NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English", "de": "Deutsch"}


class Unavailable(Exception):
    """The gateway daemon did not answer on its control socket."""


class Taken(Unavailable):
    """The client's address belongs to another device's session (the daemon
    found another MAC there): no session, no page of that session."""


def portal() -> Portal:
    found: Portal = current_app.extensions["passerelle.portal"]
    return found


def client_ip() -> str:
    return request.remote_addr or ""


def _retried(call: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    # EAGAIN: the socket's listen queue was full and nothing was sent, so
    # trying again is safe (the CLI's calls share that queue).
    for pause in (0.005, 0.02, 0.1):
        try:
            return call(*args)
        except BlockingIOError:
            time.sleep(pause)
    return call(*args)


def ask(call: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """A quick call on the control socket (who, check-out), at most
    CONTROL_CALLS at once: bursts of probes would overflow its queue."""
    with portal().slots:
        return _retried(call, *args)


def who() -> dict[str, Any]:
    """The daemon's view of this client: {"ip", "mac", "session"}."""
    try:
        return ask(portal().control.who, client_ip())
    except ControlError as exc:
        if exc.refusal is Refusal.address_taken:
            raise Taken from None
        log.warning("control: who %s: %s %s", client_ip(), exc.code, exc)
        raise Unavailable from None
    except OSError as exc:
        log.warning("control socket: %s", exc)
        raise Unavailable from None


# --- the Host a request carries ------------------------------------------------

def _is_portal_host(host: str) -> bool:
    return probes.host_name(host) in portal().settings.own_hosts


@bp.before_app_request
def captive() -> BaseResponse | None:
    host = request.headers.get("Host", "")
    if host and not origin.valid_host(host):
        return plain(400, "Bad request: not a valid Host header.")
    if host and _is_portal_host(host):
        return _https_only()
    answer = probes.probe(host, request.path)
    if answer is not None:
        try:
            online = who().get("session") is not None
        except Unavailable:  # Taken included: not this device's session
            online = False  # fail closed: the OS keeps showing the portal
        if online:
            return Response(answer.body, answer.status, content_type=answer.content_type)
        # A probe's URL is no page to go on to afterwards.
        return redirect(portal().settings.portal_url, 302)
    return redirect(_portal_url(host), 302)


def _https_only() -> BaseResponse | None:
    """Plain HTTP to the portal itself: sent to the HTTPS portal, unless the
    site allows plain HTTP. A password or a key never crosses the air in
    clear, nor the cookie; a plain POST is not carried out (what it carried
    has crossed already) and goes to the HTTPS home page."""
    settings = portal().settings
    if request.is_secure or settings.allow_plain_http or request.path == settings.api_path:
        return None  # (the API answers plain HTTP itself: it is HTTPS only)
    if request.method not in ("GET", "HEAD"):
        return redirect(settings.secure_url, 303)
    full = request.full_path.rstrip("?")
    if not origin.is_local_path(full):
        return redirect(settings.secure_url, 302)
    return redirect(settings.secure_url.rstrip("/") + full, 302)


def _portal_url(host: str) -> str:
    """The portal, with the signed way on to a GET of an ordinary page."""
    settings = portal().settings
    url = origin.original_url(host, request.full_path) if request.method == "GET" else None
    if url is None:
        return settings.portal_url
    return f"{settings.portal_url}?to={origin.sign(portal().secret, url)}"


# --- rendering ------------------------------------------------------------------

def plain(status: int, text: str) -> Response:
    return Response(text + "\n", status, content_type="text/plain; charset=utf-8")


def page(template: str, status: int = 200, **context: Any) -> Response:
    if request_ctx.url_adapter is None:
        # Werkzeug could not match the Host at all: no URLs to build a page with.
        return plain(status, str(context.get("title", "Error")))
    here = request.full_path.rstrip("?") if request.method == "GET" else url_for("portal.home")
    if not origin.is_local_path(here):
        here = url_for("portal.home")
    locale = str(get_locale() or "en")
    html = render_template(template, site_name=portal().settings.site_name, lang=locale,
                           languages=[(c, LANGUAGE_NAMES[c]) for c in LANGUAGES], here=here,
                           plain_http=not request.is_secure, **context)
    return Response(html, status, content_type="text/html; charset=utf-8")


def duration(seconds: float) -> str:
    minutes = max(0, math.ceil(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("%(hours)d h %(minutes)02d min", hours=hours, minutes=minutes)
    return _("%(minutes)d min", minutes=minutes)


def data_size(octets: int) -> str:
    if octets < 1_000_000:
        return _("%(amount)s kB", amount=format_decimal(octets / 1e3, format="#,##0"))
    return _("%(amount)s MB", amount=format_decimal(octets / 1e6, format="#,##0.0"))


def _way_on(token: str | None) -> str | None:
    return origin.unsign(portal().secret, token)


def _token() -> str:
    token = request.args.get("to", "")
    return token if len(token) <= 8192 else ""


# --- pages ----------------------------------------------------------------------

@bp.get("/")
def home() -> Response:
    client = who()
    if client.get("session"):
        return status_page(client["session"])
    form = CheckInForm(to=_token())
    return checkin_page(form, offer=_offer())


def checkin_page(form: CheckInForm, status: int = 200,
                 offer: dict[str, Any] | None = None) -> Response:
    """The check-in form; with ``offer`` (a station found by its key), the
    person greeted by name, one tap or the password (docs/portal.md)."""
    offer = offer or {}
    login = offer.get("login") if isinstance(offer.get("login"), str) else None
    tap = login is not None and offer.get("mode") == "tap"
    if login and not tap and not form.login.data:
        form.login.data = login  # the site asks for the password: the name is known
    refusal = Refusal.from_code(str(offer.get("refusal") or ""))
    return page("checkin.html", status, title=_("Check in"), form=form,
                terms_url=portal().settings.terms_url, known=login, tap=tap,
                tap_form=TapForm(to=form.to.data or ""),
                reason=REASONS[refusal] if refusal is not None else None)


@bp.post("/check-in")
def check_in() -> BaseResponse:
    form = CheckInForm()
    if not form.validate():
        return checkin_page(form, 400)
    p = portal()
    client = who()
    if client.get("session"):
        # Already checked in: the daemon would hand back the session, key
        # included, whatever the password; this browser gets the status only.
        return redirect(url_for("portal.status"), 303)
    ip = client_ip()
    login = form.login.data or ""
    mac_key = f"mac:{client.get('mac') or ip}"
    login_key = f"login:{login.casefold()}"
    now = p.clock()
    wait = max(p.by_mac.retry_after(mac_key, now), p.by_login.retry_after(login_key, now))
    if wait > 0:
        log.warning("check-in of %s from %s (%s) held back: too many failures",
                    login, ip, client.get("mac"))
        minutes = max(1, math.ceil(wait / 60))
        response = page("message.html", 429, title=_("Too many attempts"),
                        text=_("Too many failed check-ins from this device or for this "
                               "login. Wait %(minutes)d min, then try again.",
                               minutes=minutes))
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    try:
        # Not among the quick calls: it waits for the centre (seconds, when
        # the centre is slow) and must not hold up the probes meanwhile.
        granted = _retried(p.control.check_in, ip, login, form.password.data or "")
    except ControlError as exc:
        refusal = _refusal(exc, f"check-in {ip}")
        if refusal.attempt:
            p.by_mac.failed(mac_key, now)
            p.by_login.failed(login_key, now)
        log.info("check-in of %s from %s refused: %s", login, ip, exc.code)
        form.password.data = ""
        return page("refused.html", refusal.status, title=_("Check-in refused"),
                    reason=REASONS[refusal], form=form, terms_url=p.settings.terms_url,
                    # Trying again cannot help until the device reconnects.
                    again=refusal is not Refusal.unknown_client)
    except OSError as exc:
        raise Unavailable from exc
    p.by_mac.succeeded(mac_key)
    p.by_login.succeeded(login_key)
    # The key is shown to this browser only: the portal knows a client by its
    # IP address, which another device on the LAN could borrow.
    browser["session_id"] = str(granted.get("session_id", ""))
    log.info("check-in of %s from %s (%s)", login, ip, client.get("mac"))
    return redirect(url_for("portal.welcome", to=form.to.data or None), 303)


def _mine(session: dict[str, Any]) -> bool:
    """Whether this browser checked the session in: the key is shown to it
    only (the portal knows a client by its IP address, which another device
    on the LAN could borrow)."""
    return hmac.compare_digest(str(browser.get("session_id", "")).encode(),
                               str(session.get("session_id", "")).encode())


def _key_of(session: dict[str, Any]) -> dict[str, Any]:
    """The person's personal key ({"key", "ssid", "serial"}), or {} for
    another browser or when the daemon has none."""
    if not _mine(session):
        return {}
    try:
        found = ask(portal().control.key_of, client_ip())
    except ControlError as exc:
        if exc.refusal is Refusal.address_taken:
            raise Taken from None
        if exc.refusal is Refusal.no_session:
            return {}
        log.warning("control: key of %s: %s %s", client_ip(), exc.code, exc)
        raise Unavailable from None
    except OSError as exc:
        raise Unavailable from exc
    return found if found.get("key") else {}


def _key_context(found: dict[str, Any]) -> dict[str, Any]:
    """What the key and account pages show of a key: SSID, key, QR code."""
    key = str(found.get("key") or "")
    ssid = str(found.get("ssid") or portal().settings.ssid)
    qr = ""
    if key:
        qr = wifiqr.svg(wifiqr.payload(ssid, key),
                        _("QR code to join the Wi-Fi network %(ssid)s", ssid=ssid))
    return {"key": key, "ssid": ssid, "qr": qr, "serial": found.get("serial")}


@bp.get("/welcome")
def welcome() -> BaseResponse:
    session = who().get("session")
    if not session:
        return redirect(url_for("portal.home", to=_token() or None), 303)
    return page("welcome.html", title=_("You are checked in"), session=session,
                hidden=not _mine(session), way_on=_way_on(_token()),
                left=duration(session.get("seconds_left") or 0),
                **_key_context(_key_of(session)))


@bp.get("/account")
def account() -> BaseResponse:
    session = who().get("session")
    if not session:
        return redirect(url_for("portal.home"), 303)
    # The rotate form is only a CSRF token, like the check-out form.
    return page("account.html", title=_("Your account"), session=session,
                hidden=not _mine(session), form=CheckOutForm(),
                rotated=request.args.get("rotated") == "1",
                **_key_context(_key_of(session)))


@bp.post("/account/rotate")
def rotate_key() -> BaseResponse:
    form = CheckOutForm()
    if not form.validate():
        return page("message.html", 400, title=_("Bad request"),
                    text=_("Your page was too old. Reload it and try again."))
    session = who().get("session")
    if not session:
        return redirect(url_for("portal.home"), 303)
    if not _mine(session):
        log.info("key rotation from %s refused: not the browser that checked in", client_ip())
        return page("message.html", 403, title=_("Your account"),
                    text=_("For your security, your personal key is shown only in the "
                           "browser you checked in with. To see it again, check out and "
                           "check in again."))
    try:
        # It waits for the centre: not among the quick calls.
        _retried(portal().control.rotate_key, client_ip())
    except ControlError as exc:
        if exc.refusal is Refusal.address_taken:
            raise Taken from None
        if exc.refusal is Refusal.no_session:
            return redirect(url_for("portal.home"), 303)
        log.warning("key rotation of %s: %s %s", client_ip(), exc.code, exc)
        return page("message.html", 503, title=_("Your account"),
                    text=_("Your key could not be changed now. Try again in a minute."))
    except OSError as exc:
        raise Unavailable from exc
    log.info("key of %s rotated from %s", session.get("login"), client_ip())
    return redirect(url_for("portal.account", rotated="1"), 303)


def status_page(session: dict[str, Any]) -> Response:
    credit = session.get("credit_seconds_left")
    return page("status.html", title=_("Your session"), session=session, form=CheckOutForm(),
                left=duration(session.get("seconds_left") or 0),
                used=duration(session.get("seconds_used") or 0),
                credit=duration(credit) if isinstance(credit, int | float) else None,
                up=data_size(int(session.get("bytes_up") or 0)),
                down=data_size(int(session.get("bytes_down") or 0)))


@bp.get("/status")
def status() -> BaseResponse:
    session = who().get("session")
    if not session:
        return redirect(url_for("portal.home"), 303)
    return status_page(session)


@bp.post("/check-out")
def check_out() -> BaseResponse:
    form = CheckOutForm()
    if not form.validate():
        return page("message.html", 400, title=_("Bad request"),
                    text=_("Your page was too old. Reload it and try again."))
    try:
        ask(portal().control.check_out, client_ip())
    except ControlError as exc:
        if exc.refusal is Refusal.no_session:
            return redirect(url_for("portal.home"), 303)
        if exc.refusal is Refusal.address_taken:
            raise Taken from None
        log.warning("check-out of %s: %s %s", client_ip(), exc.code, exc)
        raise Unavailable from None
    except OSError as exc:
        raise Unavailable from exc
    log.info("check-out of %s", client_ip())
    return page("message.html", title=_("You are checked out"),
                text=_("Your session has ended: your devices reach the Internet again "
                       "when you next check in. Thank you, and see you soon."), again=True)


@bp.get("/lang/<code>")
def language(code: str) -> BaseResponse:
    target = request.args.get("next", "")
    if not origin.is_local_path(target):
        target = url_for("portal.home")
    response = redirect(target, 303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, httponly=True,
                            samesite="Lax", secure=request.is_secure)
    return response


def captive_api_view() -> Response:
    """RFC 8908: HTTPS only; clients validate the certificate."""
    if not request.is_secure:
        return page("message.html", 404, title=_("Not found"),
                    text=_("The captive portal API is served over HTTPS only."))
    settings = portal().settings
    try:
        session = who().get("session")
    except Unavailable:
        session = None
    doc = captive_api.document(session, settings.secure_url, settings.venue_url)
    return Response(json.dumps(doc), 200, content_type=captive_api.CONTENT_TYPE)


# --- errors ---------------------------------------------------------------------

def register_errors(app: Flask) -> None:
    @app.errorhandler(Taken)
    def taken(exc: Taken) -> Response:
        why = REASONS[Refusal.address_taken]
        return page("message.html", Refusal.address_taken.status, title=str(why.title),
                    text=str(why.advice))

    @app.errorhandler(Unavailable)
    def unavailable(exc: Unavailable) -> Response:
        why = REASONS[Refusal.box_unavailable]
        return page("message.html", 503, title=str(why.title), text=str(why.advice))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        log.info("CSRF check failed from %s: %s", client_ip(), exc.description)
        return page("message.html", 400, title=_("Bad request"),
                    text=_("Your page was too old. Reload it and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        titles = {404: _("Not found"), 405: _("Bad request"), 413: _("Too much data"),
                  429: _("Too many attempts")}
        return page("message.html", code, title=titles.get(code, _("Bad request")),
                    text=_("This request cannot be understood."))

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        log.exception("portal: %s %s failed", request.method, request.path)
        return page("message.html", 500, title=_("Something went wrong"),
                    text=_("Try again in a minute. If it lasts, tell the site's reception."))


# --- the one-tap check-in (a station the box found by its key) -----------------

def _offer() -> dict[str, Any]:
    """What the daemon offers this station ({"login", "mode", "refusal"});
    {} when it cannot say: the ordinary form is always there."""
    try:
        return ask(portal().control.offer, client_ip())
    except ControlError as exc:
        if exc.refusal is Refusal.address_taken:
            raise Taken from None
        log.warning("control: offer for %s: %s %s", client_ip(), exc.code, exc)
    except OSError as exc:
        log.warning("control socket: %s", exc)
    return {}


@bp.post("/check-in/key")
def check_in_key() -> BaseResponse:
    """One tap: no password; the daemon checks the station's key in at the
    centre, which decides by its policy."""
    form = TapForm()
    if not form.validate():
        return page("message.html", 400, title=_("Bad request"),
                    text=_("Your page was too old. Reload it and try again."))
    p = portal()
    client = who()
    if client.get("session"):
        return redirect(url_for("portal.status"), 303)
    ip = client_ip()
    try:
        # It waits for the centre: not among the quick calls.
        granted = _retried(p.control.check_in_by_key, ip)
    except ControlError as exc:
        refusal = _refusal(exc, f"check-in by key {ip}")
        log.info("check-in by key from %s refused: %s", ip, exc.code)
        # The ordinary form, with the reason: a password still works.
        return page("refused.html", refusal.status, title=_("Check-in refused"),
                    reason=REASONS[refusal], form=CheckInForm(to=form.to.data or ""),
                    terms_url=p.settings.terms_url, again=True)
    except OSError as exc:
        raise Unavailable from exc
    browser["session_id"] = str(granted.get("session_id", ""))
    log.info("check-in by key of %s from %s (%s)", granted.get("login"), ip, client.get("mac"))
    return redirect(url_for("portal.welcome", to=form.to.data or None), 303)


def _refusal(exc: ControlError, what: str) -> Refusal:
    """The refusal a check-in's ControlError carries; the address of
    another device and a daemon that cannot answer are pages of their own."""
    if exc.refusal is Refusal.address_taken:
        raise Taken from None
    if exc.refusal is None and exc.status >= 500:
        log.warning("control: %s: %s %s", what, exc.code, exc)
        raise Unavailable from None
    return exc.refusal or Refusal.rejected  # a code this portal does not know
