"""Live sessions of every site in the operator's scope, and Disconnect."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from passerelle.errors import UserError
from passerelle.radius import outbox, reach
from passerelle.radius.db import transaction

from . import audit
from .forms import DisconnectForm
from .live_ops import (
    MAX_SESSION_ID,
    Cursor,
    LiveFilter,
    describe,
    live_sessions,
    queue_disconnect,
    recent_requests,
    request_row,
)
from .live_rows import session_rows
from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("live", __name__, url_prefix="/live")


def _page_query(wanted: LiveFilter, after: Cursor | None) -> dict[str, str]:
    """The address arguments of one page of a filtered view."""
    return wanted.query() | ({"after": str(after)} if after is not None else {})


@bp.get("/")
def index() -> str | tuple[str, int]:
    state = console()
    try:
        wanted = LiveFilter.parse(request.args)
        after = Cursor.parse(request.args.get("after", ""))
    except UserError as exc:
        return render_template("error.html", title="Bad filter", message=str(exc)), 400
    now = state.now()
    with transaction(state.factory) as db:
        view = live_sessions(db, g.principal.scope, wanted, now, state.settings.max_rows,
                             after)
        requests = recent_requests(db, g.principal.scope, now)
    here = url_for("live.index")
    newest = here + (f"?{urlencode(wanted.query())}" if wanted.query() else "")
    following = (f"{here}?{urlencode(_page_query(wanted, view.next))}"
                 if view.next is not None else "")
    form = DisconnectForm(back=urlencode(_page_query(wanted, after)))
    # The same hidden fields in every row's form: rendered once, not a hundred times.
    rows = session_rows(view.rows, here, url_for("live.disconnect", session_id=0)
                        .removesuffix("0/disconnect"), form.hidden_tag())
    return render_template("live.html", title="Live sessions", view=view, wanted=wanted,
                           after=after, newest=newest, following=following, rows=rows,
                           form=form, now=now, refresh=state.settings.refresh,
                           requests=requests, describe=describe)


def _back(query: str) -> str:
    """The live view with the filters and page the operator came from (if they parse)."""
    args = dict(parse_qsl(query[:400]))
    try:
        wanted = LiveFilter.parse(args)
    except UserError:
        wanted = LiveFilter()
    try:
        after = Cursor.parse(args.get("after", ""))
    except UserError:
        after = None
    query = urlencode(_page_query(wanted, after))
    return url_for("live.index") + (f"?{query}" if query else "")


@bp.post(f"/<int(max={MAX_SESSION_ID}):session_id>/disconnect")
def disconnect(session_id: int) -> Response:
    state = console()
    form = DisconnectForm()
    if not form.validate_on_submit():
        abort(400)
    scope, login = g.principal.scope, g.principal.login
    with transaction(state.factory) as db:
        queued = queue_disconnect(db, scope, session_id, state.now(), login)
    if queued is None:
        flash(f"Session {session_id} is not open (any more), or not yours to end.", "bad")
        return redirect(_back(form.back.data or ""))
    # The first try from here, after the transaction (the packet waits for
    # the box, not the database): the answer is on the page at once. The
    # RADIUS server's courier sends it again until the box answers.
    reach.send_due(state.factory, lambda target, _code, attributes:
                   state.disconnect(target, attributes), outbox.Retry(),
                   clock=state.now, ids=[queued])
    with transaction(state.factory) as db:
        row = request_row(db, scope, queued)
        outcome = describe(row) if row is not None else None
        message = outcome.message if outcome else f"Disconnect {queued} queued."
        audit.record(db, g.principal, "disconnect", "session", session_id, message,
                     state.now())
    log.info("console: %s pressed Disconnect for session %d: %s", login, session_id, message)
    ok = outcome.ok if outcome else None
    flash(message, "wait" if ok is None else "ok" if ok else "bad")
    return redirect(_back(form.back.data or ""))
