"""The teleworker's own account on the centre, reachable from anywhere:
their credit left, their sessions, and a password change.

People sign in here with the login and password they use for the Wi-Fi,
apart from operators: the access table lists these pages as public (no
operator needed) and this blueprint checks its own sign-in. A console
session holds either an operator or a person, never both. Changing the
password ends the person's other account sessions: each session keeps a
fingerprint of the password hash it signed in with.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from werkzeug.wrappers import Response
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from passerelle.errors import UserError
from passerelle.portal.limits import too_many
from passerelle.radius import admin, keys, ledger, passwords, store
from passerelle.radius.db import transaction
from passerelle.radius.models import Company, Person, Radacct, Site

from .forms import PostForm, SignInForm
from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("account", __name__, url_prefix="/account")

# The Flask session's keys for a person (an operator's are access.OPERATOR ...).
PERSON, STAMP, SIGNED_IN, SEEN = "person", "person_stamp", "person_signed_in", "person_seen"
SESSIONS_SHOWN = 50
# Counted apart from operators' logins in the shared per-login limiter.
LIMIT_PREFIX = "person:"


def stamp(password_hash: str) -> str:
    """What a session remembers of the password it signed in with."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Teleworker:
    id: int
    login: str
    name: str
    company: str


class ChangePasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[
        DataRequired("Enter your current password."),
        Length(max=admin.MAX_PASSWORD_OCTETS)])
    new = PasswordField("New password", validators=[
        DataRequired("Enter a new password."), Length(min=8, max=admin.MAX_PASSWORD_OCTETS,
                                                      message="8 to 128 characters.")])
    repeat = PasswordField("New password again", validators=[
        DataRequired("Enter the new password again."),
        EqualTo("new", "The two new passwords differ.")])


def _current(db: DB) -> Teleworker | None:
    """The person of this request's session, if it is still valid."""
    state = console()
    person_id, remembered = session.get(PERSON), session.get(STAMP)
    signed_in, seen = session.get(SIGNED_IN), session.get(SEEN)
    if not isinstance(person_id, int) or not isinstance(remembered, str):
        return None
    if not isinstance(signed_in, float | int) or not isinstance(seen, float | int):
        return None
    now = state.clock()
    if now - seen > state.settings.idle_timeout or now - signed_in > state.settings.max_session:
        g.account_expired = True
        return None
    found = db.execute(select(Person, Company.name).join(Company)
                       .where(Person.id == person_id)).first()
    if found is None or not found[0].active or not hmac.compare_digest(
            stamp(found[0].password_hash), remembered):
        g.account_expired = True
        return None
    session[SEEN] = now
    person = found[0]
    return Teleworker(person.id, person.login, person.name, found[1])


@bp.before_request
def _signed_in() -> Response | None:
    if request.endpoint == "account.sign_in":
        return None
    with transaction(console().factory) as db:
        g.teleworker = _current(db)
    if g.teleworker is None:
        for key in (PERSON, STAMP, SIGNED_IN, SEEN):
            session.pop(key, None)
        return redirect(url_for("account.sign_in",
                                expired="1" if g.get("account_expired") else None))
    return None


def _authenticate(db: DB, login: str, password: str) -> tuple[int, str] | None:
    """(person id, password hash) for a right login and password of an
    active person; an unknown login costs what a wrong password costs."""
    found = store.find_account(db, login)
    if found is None:
        passwords.spend_verification(password)
        return None
    if not passwords.verify_password(found.password_hash, password) or not found.facts.active:
        return None
    return found.person_id, found.password_hash


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int]:
    state = console()
    form = SignInForm()
    error, status = "", 200
    if form.validate_on_submit():
        now = state.clock()
        login = (form.login.data or "").strip()
        address = request.remote_addr or "-"
        limited = LIMIT_PREFIX + login.lower()
        wait = max(state.by_login.retry_after(limited, now),
                   state.by_address.retry_after(address, now))
        if wait > 0:
            error, status = too_many(wait), 429
        else:
            with transaction(state.factory) as db:
                found = _authenticate(db, login, form.password.data or "")
            if found is None:
                state.by_login.failed(limited, now)
                state.by_address.failed(address, now)
                log.info("account: failed sign-in for %r from %s", login[:64], address)
                error = "Wrong login or password."
            else:
                state.by_login.succeeded(limited)
                session.clear()
                session.update({PERSON: found[0], STAMP: stamp(found[1]), SIGNED_IN: now,
                                SEEN: now})
                log.info("account: person %d signed in from %s", found[0], address)
                return redirect(url_for("account.index"))
    elif request.method == "POST":
        status = 400
    notice = "Your session has ended: sign in again." if request.args.get("expired") else ""
    return render_template("account/sign_in.html", form=form, error=error, notice=notice,
                           title="Your account"), status


@dataclass(frozen=True)
class SessionLine:
    site: str
    start: datetime | None
    stop: datetime | None
    seconds: int | None
    octets: int


@bp.get("/")
def index() -> str:
    state = console()
    who: Teleworker = g.teleworker
    now = state.now()
    with transaction(state.factory) as db:
        left = ledger.balance(db, who.id)
        key = _current_key(db, who)
        rows = db.execute(
            select(Site.name, Radacct.acctstarttime, Radacct.acctstoptime,
                   Radacct.acctinputoctets + Radacct.acctoutputoctets)
            .select_from(Radacct).outerjoin(Site, Radacct.site_id == Site.id)
            .where(Radacct.person_id == who.id)
            .order_by(Radacct.acctstarttime.desc(), Radacct.radacctid.desc())
            .limit(SESSIONS_SHOWN)).all()
    lines = [SessionLine(site or "", start, stop,
                         None if start is None else int(((stop or now) - start).total_seconds()),
                         int(octets or 0)) for site, start, stop, octets in rows]
    return render_template("account/index.html", title="Your account", who=who, left=left,
                           lines=lines, form=PostForm(), shown=SESSIONS_SHOWN,
                           key=key)


def _current_key(db: DB, who: Teleworker) -> tuple[str, str] | None:
    """(private SSID, passphrase) of the person's current Wi-Fi key while
    they are checked in somewhere (a session open), else None: the key is
    shown to its owner, and only while they use it."""
    checked_in = db.scalar(select(Radacct.radacctid).where(
        Radacct.person_id == who.id, Radacct.acctstoptime.is_(None)).limit(1))
    found = keys.current(db, who.id) if checked_in is not None else None
    return (found.ssid, found.passphrase) if found is not None else None


@bp.route("/password", methods=["GET", "POST"])
def password() -> Response | tuple[str, int]:
    state = console()
    who: Teleworker = g.teleworker
    form = ChangePasswordForm()
    error, status = "", 200
    if form.validate_on_submit():
        now = state.clock()
        limited = LIMIT_PREFIX + who.login.lower()
        if state.by_login.retry_after(limited, now) > 0:
            error, status = "Too many wrong passwords: try again later.", 429
        else:
            try:
                with transaction(state.factory) as db:
                    person = db.get(Person, who.id)
                    if person is None or not passwords.verify_password(
                            person.password_hash, form.current.data or ""):
                        raise UserError("Your current password is not right.")
                    person = admin.set_person(db, person.login,
                                              admin.PersonChanges(password=form.new.data))
                    session[STAMP] = stamp(person.password_hash)
            except UserError as exc:
                state.by_login.failed(limited, now)
                log.info("account: %s: password not changed: %s", who.login, exc)
                error, status = str(exc), 400
            else:
                log.info("account: %s changed their password", who.login)
                return redirect(url_for("account.index", changed="1"))
    elif request.method == "POST":
        status = 400
    return render_template("account/password.html", title="Change your password", form=form,
                           error=error), status


@bp.post("/sign-out")
def sign_out() -> Response:
    if PostForm().validate_on_submit():
        log.info("account: %s signed out", g.teleworker.login)
        session.clear()
    return redirect(url_for("account.sign_in"))
