"""Live sessions of every site in the operator's scope, and Disconnect."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from passerelle.errors import UserError
from passerelle.radius.db import transaction

from . import audit
from .forms import DisconnectForm
from .live_ops import LiveFilter, disconnect_order, live_sessions, send_disconnect
from .state import console

bp = Blueprint("live", __name__, url_prefix="/live")

# radacct's key is a BIGINT on PostgreSQL: larger is no session, not an error.
MAX_SESSION_ID = 2**63 - 1


@bp.get("/")
def index() -> str | tuple[str, int]:
    state = console()
    try:
        wanted = LiveFilter.parse(request.args)
    except UserError as exc:
        return render_template("error.html", title="Bad filter", message=str(exc)), 400
    now = state.now()
    with transaction(state.factory) as db:
        view = live_sessions(db, g.principal.scope, wanted, now, state.settings.max_rows)
    return render_template("live.html", title="Live sessions", view=view, wanted=wanted,
                           form=DisconnectForm(back=urlencode(wanted.query())), now=now,
                           refresh=state.settings.refresh)


def _back(query: str) -> str:
    """The live view with the filters the operator came from (if they parse)."""
    try:
        wanted = LiveFilter.parse(dict(parse_qsl(query[:400])))
    except UserError:
        wanted = LiveFilter()
    query = urlencode(wanted.query())
    return url_for("live.index") + (f"?{query}" if query else "")


@bp.post(f"/<int(max={MAX_SESSION_ID}):session_id>/disconnect")
def disconnect(session_id: int) -> Response:
    state = console()
    form = DisconnectForm()
    if not form.validate_on_submit():
        abort(400)
    with transaction(state.factory) as db:
        order = disconnect_order(db, g.principal.scope, session_id)
    if order is None:
        flash(f"Session {session_id} is not open (any more), or not yours to end.", "bad")
        return redirect(_back(form.back.data or ""))
    # After the transaction: the packet waits for the box, not the database.
    outcome = send_disconnect(order, state.disconnect, g.principal.login)
    with transaction(state.factory) as db:
        audit.record(db, g.principal, "disconnect", "session", order.session_id,
                     outcome.message, state.now())
    flash(outcome.message, "ok" if outcome.ok else "bad")
    return redirect(_back(form.back.data or ""))
