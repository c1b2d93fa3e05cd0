"""POST /enrol/v1: a box trades its one-time code for its identity.

The box is not an operator: this endpoint is public, exempt from the form
CSRF check (it takes JSON from a program, not a form from a browser), and
limited per client address like the sign-in. The rules are in
``radius.enrolment``; this only speaks HTTP.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from passerelle.errors import UserError
from passerelle.radius import enrolment
from passerelle.radius.db import transaction

from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("enrol", __name__)

STATUS = {
    enrolment.Verdict.UNKNOWN: 403,
    enrolment.Verdict.USED: 409,
    enrolment.Verdict.EXPIRED: 410,
    enrolment.Verdict.REVOKED: 410,
}


def _answer(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


@bp.post("/enrol/v1")
def enrol() -> tuple[Response, int]:
    state = console()
    address = request.remote_addr or "?"
    if state.by_address.retry_after(address, state.clock()) > 0:
        log.warning("enrolment: %s refused, too many failed attempts", address)
        return _answer(429, "too_many_attempts",
                       "too many wrong codes from this address: wait 15 minutes")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) \
            or not isinstance(body.get("csr"), str) or len(body["code"]) > 64:
        return _answer(400, "bad_request", 'send JSON {"code": "...", "csr": "PEM"}')
    now = datetime.fromtimestamp(state.clock(), UTC).replace(tzinfo=None)
    try:
        with transaction(state.factory) as db:
            bundle = enrolment.redeem(db, body["code"], body["csr"], now, address)
    except enrolment.EnrolmentRefused as exc:
        state.by_address.failed(address, state.clock())
        log.warning("enrolment from %s refused: %s", address, exc.verdict.value)
        return _answer(STATUS[exc.verdict], exc.verdict.value, str(exc))
    except UserError as exc:
        log.warning("enrolment from %s refused: %s", address, exc)
        return _answer(400, "bad_request", str(exc))
    log.info("enrolment: gateway %s enrolled from %s", bundle.identifier, address)
    return jsonify(bundle.to_json()), 200
