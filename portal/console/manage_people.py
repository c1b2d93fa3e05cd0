"""People: the list (per company, with a search), a page each with their
sessions and credit ledger, add / edit / deactivate, password reset, credit
top-up, and the CSV import (all or nothing).

Network ops manage everyone; a company manager manages their own company's
people (and tops up their credit), never anyone else's: every lookup goes
through the scope (manage_ops), and an id outside it is a 404.
Every change goes through radius/admin.py (deactivating is
``admin.set_person(active=False)``, so whatever admin.py does then happens
here as on the command line) and is recorded in the audit log.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from werkzeug.wrappers import Response

from passerelle.errors import UserError
from passerelle.radius import admin, people_csv
from passerelle.radius.admin_cli import hours
from passerelle.radius.db import transaction
from passerelle.radius.models import Person

from . import audit, manage_ops
from .filters import MAX_ID, optional_id, search_text
from .forms import ActiveForm, CreditForm, ImportForm, PasswordForm, PersonForm, accepted
from .scope import Principal
from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("people", __name__, url_prefix="/people")
ID = f"<int(max={MAX_ID}):person_id>"
KIND = "person"
# The upload's own limit (the console's is 16 KiB): the file, its part headers, the token.
UPLOAD_LIMIT = people_csv.MAX_BYTES + 64 * 1024
# Each person's password is hashed with argon2 (about 75 ms): 300 people
# answer within a reverse proxy's usual 30 s; bigger files go through
# `passerelle admin person import`.
WEB_MAX_PEOPLE = 300


def allow_upload() -> None:
    """Before the CSRF check reads the form: only the import takes a file."""
    if request.endpoint == "people.import_csv":
        request.max_content_length = UPLOAD_LIMIT


def _found(db: DB, person_id: int) -> Person:
    found = manage_ops.person(db, g.principal.scope, person_id)
    if found is None:
        abort(404)
    return found


def _own_company(principal: Principal) -> str | None:
    """A company manager's company: the only one they add people to."""
    return principal.company_name if principal.company_id is not None else None


def _companies(db: DB) -> list[str]:
    own = _own_company(g.principal)
    return [own] if own is not None else manage_ops.company_names(db)


def _snapshot(person: Person) -> dict[str, Any]:
    return {"login": person.login, "name": person.name, "company": person.company.name,
            "language": person.language, "active": person.active}


def _rules(new: bool) -> dict[str, Any]:
    rules: dict[str, Any] = {
        "login": admin.clean_login,
        "name": lambda v: admin.clean_name(v, "the name", 128) if v else "",
        "language": admin.clean_language,
    }
    if new:
        rules["password"] = lambda v: admin.clean_password(v) if v else ""
    return rules


@bp.get("/")
def index() -> str | tuple[str, int]:
    state = console()
    try:
        company_id = optional_id(request.args, "company")
        search = search_text(request.args)
    except UserError as exc:
        return render_template("error.html", title="Bad filter", message=str(exc)), 400
    with transaction(state.factory) as db:
        view = manage_ops.people(db, g.principal.scope, company_id, search)
        companies = manage_ops.companies(db, g.principal.scope)
    return render_template("manage/people.html", title="People", view=view,
                           companies=companies, company_id=company_id, search=search,
                           hours=hours, limit=manage_ops.MAX_PEOPLE_SHOWN)


@bp.route("/new", methods=["GET", "POST"])
def new() -> Response | tuple[str, int]:
    state = console()
    form = PersonForm()
    with transaction(state.factory) as db:
        form.company.choices = _companies(db)
        if not form.is_submitted():
            try:
                wanted = optional_id(request.args, "company")
            except UserError:
                wanted = None  # a bad link: the form starts without a company
            company = manage_ops.company(db, g.principal.scope, wanted) if wanted else None
            form.company.data = company.name if company else _own_company(g.principal)
            form.language.data = "fr"
    if form.is_submitted() and accepted(form, _rules(new=True)):
        company_name = _own_company(g.principal) or form.company.data or ""
        password = form.password.data or admin.new_password()
        try:
            with transaction(state.factory) as db:
                person = admin.add_person(db, form.login.data or "", company_name, password,
                                          name=form.name.data or "",
                                          language=form.language.data or "fr")
                audit.record(db, g.principal, "create", KIND, person.id,
                             manage_ops.changed({}, _snapshot(person)), state.now())
                person_id, login = person.id, person.login
        except UserError as exc:
            where = form.company if str(exc).startswith("unknown company") else form.login
            where.errors = [*where.errors, str(exc)]
        else:
            log.info("console: %s added person %r", g.principal.login, login)
            if form.password.data:
                flash(f"{login} added.", "ok")
                return redirect(url_for("people.page", person_id=person_id))
            # Shown once, on this answer only: never in a flash (the cookie).
            return _page(person_id, generated=password)
    return render_template("manage/person_form.html", title="New person", form=form,
                           person=None), 400 if form.errors else 200


def _page(person_id: int, generated: str = "", password_form: PasswordForm | None = None,
          credit_form: CreditForm | None = None) -> tuple[str, int]:
    state = console()
    with transaction(state.factory) as db:
        person = _found(db, person_id)
        statement = admin.show_credit(db, person.login)
        summary = manage_ops.sessions_summary(db, person.id)
        sites = manage_ops.site_names(db, [s.site_id for s in summary.recent])
        history = audit.history(db, KIND, person.id)
        company = person.company
    refused = any(form is not None and form.errors for form in (password_form, credit_form))
    return render_template(
        "manage/person.html", title=person.login, person=person, company=company,
        statement=statement, summary=summary, sites=sites, history=history, hours=hours,
        generated=generated, password_form=password_form or PasswordForm(),
        credit_form=credit_form or CreditForm(), active_form=ActiveForm()), \
        400 if refused else 200


@bp.get(f"/{ID}")
def page(person_id: int) -> tuple[str, int]:
    return _page(person_id)


@bp.route(f"/{ID}/edit", methods=["GET", "POST"])
def edit(person_id: int) -> Response | tuple[str, int]:
    state = console()
    form = PersonForm()
    with transaction(state.factory) as db:
        person = _found(db, person_id)
        form.company.choices = _companies(db)
        if not form.is_submitted():
            form.process(data=_snapshot(person))
        login = person.login
    if form.is_submitted() and accepted(form, _rules(new=False)):
        # A company manager cannot move someone to another company.
        company = None if _own_company(g.principal) else form.company.data
        changes = admin.PersonChanges(login=form.login.data, company=company,
                                      name=form.name.data or "", language=form.language.data)
        try:
            with transaction(state.factory) as db:
                before = _snapshot(_found(db, person_id))
                after = admin.set_person(db, login, changes)
                audit.record(db, g.principal, "edit", KIND, person_id,
                             manage_ops.changed(before, _snapshot(after)), state.now())
        except UserError as exc:
            where = form.company if str(exc).startswith("unknown company") else form.login
            where.errors = [*where.errors, str(exc)]
        else:
            log.info("console: %s changed person %r", g.principal.login, login)
            flash(f"{form.login.data} changed.", "ok")
            return redirect(url_for("people.page", person_id=person_id))
    return render_template("manage/person_form.html", title=f"Edit {login}", form=form,
                           person=person), 400 if form.errors else 200


@bp.post(f"/{ID}/active")
def active(person_id: int) -> Response:
    """Deactivate or reactivate: admin.set_person(active=...)."""
    state = console()
    form = ActiveForm()
    if not form.validate_on_submit() or form.active.data not in ("0", "1"):
        flash("Choose deactivate or reactivate.", "bad")
        return redirect(url_for("people.page", person_id=person_id))
    on = form.active.data == "1"
    with transaction(state.factory) as db:
        person = _found(db, person_id)
        admin.set_person(db, person.login, admin.PersonChanges(active=on))
        audit.record(db, g.principal, "reactivate" if on else "deactivate", KIND, person.id,
                     f"active: {'no → yes' if on else 'yes → no'}", state.now())
        login = person.login
    log.info("console: %s %s person %r", g.principal.login,
             "reactivated" if on else "deactivated", login)
    flash(f"{login} is {'active again' if on else 'deactivated'}.", "ok")
    return redirect(url_for("people.page", person_id=person_id))


@bp.post(f"/{ID}/password")
def password(person_id: int) -> Response | tuple[str, int]:
    """A new password: the one typed, or a generated one shown once."""
    state = console()
    form = PasswordForm()
    if not accepted(form, {"password": lambda v: admin.clean_password(v) if v else ""}):
        return _page(person_id, password_form=form)
    typed = form.password.data or ""
    new_password = typed or admin.new_password()
    with transaction(state.factory) as db:
        person = _found(db, person_id)
        admin.set_person(db, person.login, admin.PersonChanges(password=new_password))
        audit.record(db, g.principal, "password", KIND, person.id,
                     "password reset: " + ("typed by the operator" if typed else "generated"),
                     state.now())
        login = person.login
    log.info("console: %s reset the password of %r", g.principal.login, login)
    if typed:
        flash(f"{login}'s password is changed.", "ok")
        return redirect(url_for("people.page", person_id=person_id))
    return _page(person_id, generated=new_password)


@bp.post(f"/{ID}/credit")
def credit(person_id: int) -> Response | tuple[str, int]:
    """Top up: admin.add_credit, minutes and a note."""
    state = console()
    form = CreditForm()
    if not accepted(form, {"minutes": lambda v: admin.parse_whole(v, "number of minutes")}):
        return _page(person_id, credit_form=form)
    minutes = admin.parse_whole(form.minutes.data or "", "number of minutes")
    try:
        with transaction(state.factory) as db:
            person = _found(db, person_id)
            admin.add_credit(db, person.login, minutes, state.now(), form.note.data or "")
            audit.record(db, g.principal, "top-up", KIND, person.id,
                         f"+{minutes} min" + (f": {form.note.data}" if form.note.data else ""),
                         state.now())
            login = person.login
    except UserError as exc:
        where = form.note if "note" in str(exc) else form.minutes
        where.errors = [*where.errors, str(exc)]
        return _page(person_id, credit_form=form)
    log.info("console: %s added %d minutes to %r", g.principal.login, minutes, login)
    flash(f"{login}: +{hours(minutes * 60)} of credit.", "ok")
    return redirect(url_for("people.page", person_id=person_id))


def _outside_scope(parsed: people_csv.Parsed) -> list[people_csv.Problem]:
    """A company manager imports only their own company's people."""
    own = _own_company(g.principal)
    if own is None:
        return []
    return [people_csv.Problem(p.line, f"the company {p.company!r} is not yours ({own})")
            for p in parsed.people if p.company != own]


@bp.route("/import", methods=["GET", "POST"], endpoint="import_csv")
def import_csv() -> tuple[str, int]:
    state = console()
    form = ImportForm()
    problems: list[people_csv.Problem] = []
    added: list[people_csv.NewPerson] = []
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        name = (upload.filename or "upload")[:100]
        parsed = people_csv.parse(upload.stream.read(people_csv.MAX_BYTES + 1),
                                  max_people=WEB_MAX_PEOPLE)
        problems = sorted(parsed.problems + _outside_scope(parsed), key=lambda p: p.line)
        if not problems:
            try:
                with transaction(state.factory) as db:
                    added = people_csv.add_people(db, parsed.people)
                    ids = {login: person_id for login, person_id in db.execute(
                        select(Person.login, Person.id)
                        .where(Person.login.in_([p.login for p in added])))}
                    for person in added:
                        audit.record(db, g.principal, "import", KIND, ids.get(person.login),
                                     f"imported from {name}, line {person.line}", state.now())
            except people_csv.ImportRefused as exc:
                problems, added = exc.problems, []
        if problems:
            status = 400
            log.info("console: %s's import of %r refused: %d problem(s)", g.principal.login,
                     name, len(problems))
        else:
            log.info("console: %s imported %d people from %r", g.principal.login, len(added),
                     name)
    elif form.is_submitted():
        status = 400
    return render_template("manage/import.html", title="Import people", form=form,
                           problems=problems, added=added, columns=people_csv.COLUMNS,
                           max_people=WEB_MAX_PEOPLE), status

