"""Sign-in and sign-out."""

from __future__ import annotations

import logging

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from passerelle.portal.limits import too_many
from passerelle.radius.db import transaction

from . import access, auth_ops
from .forms import PostForm, SignInForm
from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("auth", __name__)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int]:
    state = console()
    form = SignInForm()
    following = access.safe_next(request.args.get("next"))
    if request.method == "GET" and g.get("principal") is not None:
        return redirect(following or url_for("home"))
    error, status = "", 200
    if form.validate_on_submit():
        now = state.clock()
        login = (form.login.data or "").lower()
        address = request.remote_addr or "-"
        wait = max(state.by_login.retry_after(login, now),
                   state.by_address.retry_after(address, now))
        if wait > 0:
            error, status = too_many(wait), 429
        else:
            with transaction(state.factory) as db:
                principal = auth_ops.authenticate(db, login, form.password.data or "",
                                                  state.now())
            if principal is None:
                state.by_login.failed(login, now)
                state.by_address.failed(address, now)
                log.info("console: failed sign-in for %r from %s", login[:64], address)
                error = "Wrong login or password."
            else:
                state.by_login.succeeded(login)
                session.clear()
                session.update({access.OPERATOR: principal.id, access.EPOCH: principal.epoch,
                                access.SIGNED_IN: now, access.SEEN: now})
                log.info("console: %s signed in from %s", principal.login, address)
                return redirect(following or url_for("home"))
    elif request.method == "POST":
        status = 400
    notice = "Your session has ended: sign in again." if request.args.get("expired") else ""
    return render_template("sign_in.html", form=form, error=error, notice=notice,
                           title="Sign in"), status


@bp.post("/sign-out")
def sign_out() -> Response:
    form = PostForm()
    if form.validate_on_submit():
        with transaction(console().factory) as db:
            auth_ops.sign_out(db, g.principal.id)
        log.info("console: %s signed out", g.principal.login)
        session.clear()
    return redirect(url_for("auth.sign_in"))
