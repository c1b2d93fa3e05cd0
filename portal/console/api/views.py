"""The routes of /api/v1: read the request, call ops in one transaction,
answer JSON. Who may call what is access.API_ROLES; what they see inside
is their scope (a company token: its company)."""

from __future__ import annotations

import logging
import re
from typing import assert_never

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from passerelle.radius import ledger, policy, tokens
from passerelle.radius.db import transaction
from passerelle.radius.models import ApiRole

from .. import access
from ..scope import Scope
from ..state import console
from . import inputs, ops
from .errors import ApiError, answer, bad, from_http
from .openapi import document, query_names

log = logging.getLogger("passerelle.portal")

PREFIX = "/api/v1"
MAX_BODY = 1024 * 1024  # a bulk call of 500 people fits

bp = Blueprint("api", __name__, url_prefix=PREFIX)


def scope() -> Scope:
    caller: tokens.Caller = g.caller
    match caller.role:
        case ApiRole.partner:
            return Scope()
        case ApiRole.company:
            return Scope(company=caller.company_id if caller.company_id is not None else -1)
    assert_never(caller.role)


@bp.before_request
def _authenticate() -> tuple[Response, int] | None:
    request.max_content_length = MAX_BODY
    if request.url_rule is not None:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", request.url_rule.rule)
        unknown = sorted(set(request.args) - query_names(path, request.method))
        if unknown:
            return answer(bad(f"unknown query parameter(s): "
                              f"{', '.join(repr(k[:40]) for k in unknown[:5])}"))
    allowed = access.API_ROLES.get(request.endpoint or "")
    if allowed is None:  # the document: no token needed
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    caller = None
    if scheme.lower() == "bearer" and presented:
        state = console()
        with transaction(state.factory) as db:
            caller = tokens.authenticate(db, presented.strip(), state.now())
    if caller is None:
        log.info("api: refused %s %s from %s: %s", request.method, request.path[:200],
                 request.remote_addr, "no token" if not header else "unknown or revoked token")
        return answer(ApiError(401, "unauthorized", "give a live token: "
                               "Authorization: Bearer psl_..."))
    if caller.role not in allowed:
        log.info("api: token %s (%s) refused %s %s", caller.name, caller.role.value,
                 request.method, request.path[:200])
        return answer(ApiError(403, "forbidden", f"a {caller.role.value} token may not "
                               "make this call"))
    g.caller = caller
    return None


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    return answer(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return from_http(exc)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


# -- companies ----------------------------------------------------------------

@bp.get("/companies")
def companies() -> Response:
    with transaction(console().factory) as db:
        return jsonify(items=[ops.company_json(c) for c in ops.list_companies(db, scope())])


@bp.get("/companies/<ext>")
def company(ext: str) -> Response:
    with transaction(console().factory) as db:
        return jsonify(ops.company_json(ops.find_company(db, scope(),
                                                         inputs.external_id(ext, "id"))))


@bp.put("/companies/<ext>")
def put_company(ext: str) -> tuple[Response, int]:
    ext = inputs.external_id(ext, "id")
    data = inputs.body()
    inputs.unknown_keys(data, ops.PLAN_FIELDS)
    with transaction(console().factory) as db:
        found, created = ops.put_company(db, ext, data)
        reply = ops.company_json(found)
    log.info("api: token %s %s company %s", g.caller.name,
             "created" if created else "updated", ext)
    return jsonify(reply), 201 if created else 200


@bp.get("/companies/<ext>/usage")
def company_usage(ext: str) -> Response:
    ext = inputs.external_id(ext, "id")
    since, until = inputs.query_moment("since"), inputs.query_moment("until")
    with transaction(console().factory) as db:
        found = ops.find_company(db, scope(), ext)
        return jsonify(ops.company_usage(db, found, since, until))


# -- people -------------------------------------------------------------------

@bp.get("/people")
def people() -> Response:
    after = inputs.query_whole("after", 0, 0, inputs.MAX_ID)
    limit = inputs.query_whole("limit", 100, 1, 1000)
    company_ext = inputs.query_text("company")
    with transaction(console().factory) as db:
        rows = ops.list_people(db, scope(), company_ext and inputs.external_id(
            company_ext, "company"), after, limit)
        items = [ops.person_json(p, left) for p, left in rows]
        last = rows[-1][0].id if len(rows) == limit else None
    return jsonify(items=items, next=last)


@bp.put("/people")
def put_people() -> Response:
    data = inputs.body()
    inputs.unknown_keys(data, {"people"})
    with transaction(console().factory) as db:
        reply = ops.put_people(db, scope(), data.get("people"))
    log.info("api: token %s upserted people: %d created, %d updated, %d failed",
             g.caller.name, reply["created"], reply["updated"], reply["failed"])
    return jsonify(reply)


@bp.get("/people/<ext>")
def person(ext: str) -> Response:
    with transaction(console().factory) as db:
        found = ops.find_person(db, scope(), inputs.external_id(ext, "id"))
        return jsonify(ops.person_json(found, ledger.balance(db, found.id)))


@bp.get("/people/<ext>/usage")
def person_usage(ext: str) -> Response:
    ext = inputs.external_id(ext, "id")
    since, until = inputs.query_moment("since"), inputs.query_moment("until")
    with transaction(console().factory) as db:
        found = ops.find_person(db, scope(), ext)
        return jsonify(ops.person_usage(db, found, since, until))


@bp.post("/people/<ext>/credit")
def top_up(ext: str) -> tuple[Response, int]:
    ext = inputs.external_id(ext, "id")
    key = inputs.idempotency_key()
    data = inputs.body()
    inputs.unknown_keys(data, {"minutes", "note"})
    digest = ops.call_digest(request.method, request.path, data)
    state = console()
    caller: tokens.Caller = g.caller
    try:
        with transaction(state.factory) as db:
            replay = ops.earlier_call(db, caller.token_id, key, digest)
            if replay is None:
                found = ops.find_person(db, scope(), ext)
                reply = ops.top_up(db, found, data, state.now())
                ops.record_call(db, caller.token_id, key, digest, 201, reply, state.now())
                log.info("api: token %s topped up %s by %d s (key %s)", caller.name, ext,
                         reply["added_seconds"], key[:40])
                return jsonify(reply), 201
    except IntegrityError:
        # Another copy of this call committed first: its work stands, ours
        # was rolled back; answer what it answered.
        with transaction(state.factory) as db:
            replay = ops.earlier_call(db, caller.token_id, key, digest)
        if replay is None:
            raise
        log.info("api: token %s: a concurrent copy of key %s was first", caller.name, key[:40])
    log.info("api: token %s replayed top-up key %s", caller.name, key[:40])
    response = jsonify(replay.response)
    response.headers["Idempotent-Replayed"] = "true"
    return response, replay.status


# -- sessions -----------------------------------------------------------------

@bp.get("/sessions")
def sessions() -> Response:
    wanted = ops.SessionFilter(
        after=inputs.query_whole("after", 0, 0, inputs.MAX_ID),
        limit=inputs.query_whole("limit", 100, 1, 1000),
        company=_ext_arg("company"), person=_ext_arg("person"),
        site=inputs.query_text("site"),
        since=inputs.query_moment("since"), until=inputs.query_moment("until"))
    with transaction(console().factory) as db:
        return jsonify(ops.list_sessions(db, scope(), wanted))


def _ext_arg(name: str) -> str | None:
    raw = inputs.query_text(name)
    return None if raw is None else inputs.external_id(raw, name)


# -- the policy -----------------------------------------------------------------

@bp.get("/decision")
def decision() -> Response:
    person_ext = _ext_arg("person")
    site_name = inputs.query_text("site")
    service = inputs.query_text("service") or "wifi"
    if person_ext is None or site_name is None:
        raise bad("give person (external id) and site (name); service defaults to wifi")
    state = console()
    with transaction(state.factory) as db:
        found = ops.find_person(db, scope(), person_ext)
        site = ops.find_site(db, site_name)
        return jsonify(ops.decision(db, found, site, service.strip().lower(), state.now(),
                                    policy.Settings()))
