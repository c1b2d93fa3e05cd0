"""Who may reach which endpoint: the one table, and the one hook that applies it.

Every endpoint of the app has a line here; the factory refuses to start
when one has none, and the hook refuses (403) anything it does not find.
``PUBLIC`` endpoints need no sign-in; the others name the roles that may use
them. What a role then sees *inside* an endpoint (their sites, their
company) is ``scope.Scope``, applied by every query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, abort, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from passerelle.radius.db import transaction
from passerelle.radius.models import ApiRole, OperatorRole

from . import auth_ops
from .scope import Principal
from .state import console

log = logging.getLogger("passerelle.portal")

PUBLIC: frozenset[OperatorRole] | None = None
EVERYONE = frozenset(OperatorRole)
OPS_AND_SITES = frozenset({OperatorRole.network_ops, OperatorRole.site_manager})
OPS = frozenset({OperatorRole.network_ops})
OPS_AND_COMPANIES = frozenset({OperatorRole.network_ops, OperatorRole.company_manager})

PERMISSIONS: dict[str, frozenset[OperatorRole] | None] = {
    "static": PUBLIC,
    "auth.sign_in": PUBLIC,
    "auth.sign_out": EVERYONE,
    "home": EVERYONE,
    "live.index": EVERYONE,
    "live.disconnect": EVERYONE,  # within their scope: live_ops.queue_disconnect
    "boxes.index": OPS_AND_SITES,
    # Reports and CSV within their scope (report_queries.Limits); the
    # statement is a company's: network ops pick one, a manager has theirs.
    "reports.index": EVERYONE,
    "reports.table_csv": EVERYONE,
    "reports.statement": frozenset({OperatorRole.network_ops, OperatorRole.company_manager}),
    # A teleworker's own pages: no operator; account.py checks the person's sign-in.
    "account.sign_in": PUBLIC,
    "account.index": PUBLIC,
    "account.password": PUBLIC,
    "account.sign_out": PUBLIC,
    "enrol.enrol": PUBLIC,  # a box with a one-time code (radius.enrolment)
    # The data pages (manage_*.py); within the scope: manage_ops finds
    # nothing outside it (404).
    "companies.index": OPS_AND_COMPANIES,
    "companies.page": OPS_AND_COMPANIES,
    "companies.new": OPS,
    "companies.edit": OPS,
    "companies.status": OPS,
    # A company manager manages their own company's people and tops up their credit.
    "people.index": OPS_AND_COMPANIES,
    "people.page": OPS_AND_COMPANIES,
    "people.new": OPS_AND_COMPANIES,
    "people.edit": OPS_AND_COMPANIES,
    "people.active": OPS_AND_COMPANIES,
    "people.password": OPS_AND_COMPANIES,
    "people.credit": OPS_AND_COMPANIES,
    "people.import_csv": OPS_AND_COMPANIES,
    # Site managers see their sites and boxes; only network ops change them.
    "sites.index": OPS_AND_SITES,
    "sites.page": OPS_AND_SITES,
    "sites.new": OPS,
    "sites.edit": OPS,
    "gateways.page": OPS_AND_SITES,
    "gateways.new": OPS,
    "gateways.edit": OPS,
    # The boxes, not operators: each request signed by its gateway (boxsync.py).
    "boxsync.pull": PUBLIC,
    "boxsync.rotate": PUBLIC,
    # The partner API signs in with a bearer token, not the console's
    # cookie: its rule is API_ROLES below, applied by api/views.py.
    "api.openapi": PUBLIC,
    **{f"api.{name}": PUBLIC for name in (
        "companies", "company", "put_company", "company_usage", "people", "put_people",
        "person", "person_usage", "top_up", "sessions", "decision")},
}

# Which tokens may call which API endpoint; None: no token needed. A token
# acts as the console role it stands for (a partner as network ops, a
# company token as its company's manager, within scope.Scope(company=...)),
# and each call may do what the console pages that do the same allow that
# role: one rule, PERMISSIONS above.
TOKEN_ROLES = {ApiRole.partner: OperatorRole.network_ops,
               ApiRole.company: OperatorRole.company_manager}
API_LIKE: dict[str, tuple[str, ...]] = {
    "api.companies": ("companies.index",),
    "api.company": ("companies.page",),
    "api.put_company": ("companies.new", "companies.edit", "companies.status"),
    "api.company_usage": ("companies.page",),
    "api.people": ("people.index",),
    "api.put_people": ("people.new", "people.edit", "people.active", "people.password",
                       "people.import_csv"),
    "api.person": ("people.page",),
    "api.person_usage": ("people.page",),
    "api.sessions": ("people.page",),
    "api.decision": ("people.page",),
}


def _tokens_like(pages: tuple[str, ...]) -> frozenset[ApiRole]:
    return frozenset(token for token, role in TOKEN_ROLES.items()
                     if all(role in (PERMISSIONS[page] or ()) for page in pages))


PARTNER = frozenset({ApiRole.partner})
API_ROLES: dict[str, frozenset[ApiRole] | None] = {
    "api.openapi": None,
    **{endpoint: _tokens_like(pages) for endpoint, pages in API_LIKE.items()},
    # Credit is what the partner platform sells: no company token adds to
    # its own (the console's company managers top up by hand, audited).
    "api.top_up": PARTNER,
}

# The Flask session's keys.
OPERATOR, EPOCH, SIGNED_IN, SEEN = "operator", "epoch", "signed_in", "seen"


def check_complete(app: Flask) -> None:
    """Refuse to start with an endpoint that has no rule."""
    missing = sorted({rule.endpoint for rule in app.url_map.iter_rules()} - set(PERMISSIONS))
    if missing:
        raise RuntimeError(f"endpoints without an access rule: {', '.join(missing)}")


def can(endpoint: str) -> bool:
    """Whether the signed-in operator may use ``endpoint`` (for the menus)."""
    allowed = PERMISSIONS.get(endpoint)
    principal: Principal | None = g.get("principal")
    return allowed is None or (principal is not None and principal.role in allowed)


def safe_next(target: str | None) -> str | None:
    """A path of this site to go back to after sign-in, or None."""
    if not target or len(target) > 2000 or "\\" in target or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    if any(ord(c) < 32 for c in target):
        return None
    return target


def _current() -> Principal | None:
    """The operator of this request's session, if it is still valid."""
    state = console()
    operator_id, epoch = session.get(OPERATOR), session.get(EPOCH)
    if not isinstance(operator_id, int) or not isinstance(epoch, int):
        return None
    now = state.clock()
    signed_in, seen = session.get(SIGNED_IN), session.get(SEEN)
    if not isinstance(signed_in, float | int) or not isinstance(seen, float | int):
        return None
    if now - seen > state.settings.idle_timeout or now - signed_in > state.settings.max_session:
        g.expired = True
        return None
    with transaction(state.factory) as db:
        principal = auth_ops.principal(db, operator_id, epoch)
    if principal is None:
        g.expired = True
        return None
    session[SEEN] = now
    return principal


def enforce() -> Response | None:
    """The before-request hook: sign-in and role, for every endpoint."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no such URL: the 404 follows
    if endpoint not in PERMISSIONS:
        abort(403)
    allowed = PERMISSIONS[endpoint]
    if allowed is None:  # PUBLIC
        if endpoint != "static":
            g.principal = _current()
        return None
    principal = _current()
    g.principal = principal
    if principal is None:
        if session.get(OPERATOR) is not None:
            session.clear()
        following = request.full_path if request.method == "GET" else None
        return redirect(url_for("auth.sign_in", next=safe_next(following),
                                expired="1" if g.get("expired") else None))
    if principal.role not in allowed:
        log.info("console: %s (%s) refused %s %s", principal.login, principal.role.value,
                 request.method, request.path[:200])
        abort(403)
    return None


def install(app: Flask) -> None:
    """Before any other hook (the CSRF check included): an anonymous POST
    goes to the sign-in page, not to a CSRF error."""
    app.before_request(enforce)
    app.context_processor(_template_helpers)


def _template_helpers() -> dict[str, Callable[..., object] | Principal | None]:
    return {"can": can, "principal": g.get("principal")}
