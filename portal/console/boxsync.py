"""The boxes' channel to the centre: their personal Wi-Fi keys, and a
checked-in person's rotation, over HTTP(S) JSON.

No operator signs in here: each request is signed by its gateway
(gateway/keysync.py ``signature``: HMAC-SHA256 with the gateway's RADIUS
shared secret over the method, path, time and body), within a window of
``WINDOW`` seconds of the centre's clock, and each signature is taken once.
Every refusal is one log line saying why, and a 401/400/403 with a short
JSON error; nothing is said to the caller about which check failed beyond
its word.

    POST /box/v1/keys    {"since": N}      keys.for_site's document
    POST /box/v1/rotate  {"login": L}      the new key of L, checked in at this box
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from passerelle.gateway import keysync
from passerelle.radius import keys
from passerelle.radius.db import transaction
from passerelle.radius.logins import lookup_key
from passerelle.radius.models import Gateway, Person, Radacct

from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("boxsync", __name__, url_prefix="/box/v1")

WINDOW = 60.0  # seconds a signed request is good for, either side of the centre's clock
SEEN_MAX = 100_000  # signatures remembered against replay
KEY = "passerelle.boxsync"


@dataclass
class ReplayGuard:
    """Signatures taken within the window: a replayed request is refused."""

    until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first(self, signature: str, now: float) -> bool:
        with self.lock:
            # Oldest first (insertion order): the expired ones are at the front.
            while self.until:
                oldest, until = next(iter(self.until.items()))
                if until > now and len(self.until) < SEEN_MAX:
                    break
                del self.until[oldest]
            if signature in self.until:
                return False
            self.until[signature] = now + 2 * WINDOW
            return True


class BoxDenied(Exception):
    def __init__(self, status: int, word: str, why: str) -> None:
        super().__init__(why)
        self.status, self.word = status, word


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status, content_type="application/json")


def _gateway(db: DB) -> Gateway:
    """The signing gateway, or BoxDenied."""
    ident = request.headers.get(keysync.H_GATEWAY, "")
    stamp = request.headers.get(keysync.H_TIME, "")
    given = request.headers.get(keysync.H_SIGNATURE, "")
    if not ident or not stamp or not given:
        raise BoxDenied(401, "unsigned", "no gateway, time or signature header")
    gateway = db.scalar(select(Gateway).where(Gateway.identifier == ident[:64]))
    if gateway is None:
        raise BoxDenied(401, "unknown-gateway", f"unknown gateway {ident[:64]!r}")
    expected = keysync.signature(gateway.secret.encode(), request.method, request.path,
                                 stamp, request.get_data())
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise BoxDenied(401, "bad-signature", f"gateway {gateway.identifier}: the signature "
                      "does not match (wrong secret, or the request was altered)")
    now = console().clock()
    try:
        skew = abs(now - float(stamp))
    except ValueError:
        raise BoxDenied(401, "bad-time", f"gateway {gateway.identifier}: time {stamp[:32]!r} "
                      "is not a number") from None
    if not skew <= WINDOW:  # also refuses NaN
        raise BoxDenied(401, "stale", f"gateway {gateway.identifier}: signed {skew:.0f} s away "
                      f"from the centre's clock (window {WINDOW:.0f} s): a replay, or a "
                      "clock to set right (NTP)")
    seen: ReplayGuard = current_app.extensions[KEY]
    if not seen.first(given, now):
        raise BoxDenied(401, "replayed", f"gateway {gateway.identifier}: this signed request "
                      "was already taken (a replay)")
    return gateway


def _body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise BoxDenied(400, "bad-request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BoxDenied(400, "bad-request", "the body is not a JSON object")
    return body


@bp.errorhandler(BoxDenied)
def _refused(exc: BoxDenied) -> Response:
    log.warning("box sync: %s %s from %s refused (%s): %s", request.method, request.path,
                request.remote_addr, exc.word, exc)
    return _json(exc.status, {"error": exc.word})


@bp.post("/keys")
def pull() -> Response:
    with transaction(console().factory) as db:
        gateway = _gateway(db)
        since = _body().get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise BoxDenied(400, "bad-request", f"since: {since!r} is not a whole number")
        document = keys.for_site(db, gateway.site_id, since).document()
        ident = gateway.identifier
    log.debug("box sync: %s pulled %d new keys of %d allowed since %d", ident,
              len(document["keys"]), len(document["allowed"]), since)
    return _json(200, document)


@bp.post("/rotate")
def rotate() -> Response:
    state = console()
    with transaction(state.factory) as db:
        gateway = _gateway(db)
        login = _body().get("login")
        if not isinstance(login, str) or not login or len(login) > 253:
            raise BoxDenied(400, "bad-request", "login: a non-empty string is required")
        # Only a person checked in at this box: a box cannot rotate anyone's key.
        person = db.scalar(
            select(Person).join(Radacct, Radacct.person_id == Person.id)
            .where(Person.login.in_({lookup_key(login) or login, login}),
                   Radacct.gateway_id == gateway.id,
                   Radacct.acctstoptime.is_(None)).limit(1))
        if person is None:
            raise BoxDenied(403, "not-checked-in", f"gateway {gateway.identifier}: {login!r} "
                          "has no open session there")
        made = keys.rotate(db, person.id, state.now())
        answer = {"login": person.login, "serial": made.serial, "passphrase": made.passphrase,
                  "ssid": made.ssid}
        ident = gateway.identifier
    log.info("box sync: %s rotated the key of %s (serial %d) for its owner", ident, login,
             answer["serial"])
    return _json(200, answer)


def install(app: Flask) -> None:
    """Register the blueprint, exempt from the CSRF check: a box is no
    browser, and its signature is what proves the request."""
    app.extensions[KEY] = ReplayGuard()
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)
