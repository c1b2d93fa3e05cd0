"""Companies: the list, a page each, and create / edit / suspend / close.

Every change goes through radius/admin.py (``add_company``, ``set_company``:
suspending and closing too, so whatever admin.py does on those changes
happens from here as from the command line) and is recorded in the audit
log in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from sqlalchemy.orm import Session as DB
from werkzeug.wrappers import Response

from passerelle.errors import UserError
from passerelle.radius import admin
from passerelle.radius.admin_cli import bits
from passerelle.radius.db import transaction
from passerelle.radius.models import Company

from . import audit, manage_ops
from .filters import MAX_ID
from .forms import CompanyForm, StatusForm, accepted
from .state import console

log = logging.getLogger("passerelle.portal")

bp = Blueprint("companies", __name__, url_prefix="/companies")
ID = f"<int(max={MAX_ID}):company_id>"
KIND = "company"
# The buttons of a company's page, and what each sets.
STATUS_ACTIONS = {"suspended": "suspend", "closed": "close", "active": "reactivate"}


def _found(db: DB, company_id: int) -> Company:
    found = manage_ops.company(db, g.principal.scope, company_id)
    if found is None:
        abort(404)
    return found


def _snapshot(company: Company) -> dict[str, Any]:
    return {"name": company.name, "status": company.status.value,
            "payment": company.payment.value, "categories": company.categories,
            "services": company.services, "bandwidth_up": company.bandwidth_up,
            "bandwidth_down": company.bandwidth_down, "max_session": company.max_session,
            "vlan": company.vlan}


def _rules() -> dict[str, Any]:
    return {
        "name": lambda v: admin.clean_name(v, "the name", 128),
        "status": admin.parse_status,
        "payment": admin.parse_payment,
        "categories": admin.clean_categories,
        "services": admin.clean_services,
        "bandwidth_up": lambda v: admin.parse_bandwidth(v, "upload cap"),
        "bandwidth_down": lambda v: admin.parse_bandwidth(v, "download cap"),
        "max_session": lambda v: admin.parse_duration(v, "longest session"),
        "vlan": admin.parse_vlan,
    }


def _plan(form: CompanyForm) -> admin.CompanyTerms:
    # Every field is sent: an empty cap is "none" (admin.NONE_WORDS).
    return admin.CompanyTerms(status=form.status.data, payment=form.payment.data,
                      categories=form.categories.data, services=form.services.data,
                      bandwidth_up=form.bandwidth_up.data or "none",
                      bandwidth_down=form.bandwidth_down.data or "none",
                      max_session=form.max_session.data or "none",
                      vlan=form.vlan.data or "none")


@bp.get("/")
def index() -> str:
    state = console()
    with transaction(state.factory) as db:
        rows = manage_ops.companies(db, g.principal.scope)
    return render_template("manage/companies.html", title="Companies", rows=rows, bits=bits)


@bp.route("/new", methods=["GET", "POST"])
def new() -> Response | tuple[str, int]:
    state = console()
    form = CompanyForm()
    if not form.is_submitted():
        form.status.data, form.payment.data = "active", "ok"
        form.categories.data, form.services.data = "123", "wifi"
    elif accepted(form, _rules()):
        try:
            with transaction(state.factory) as db:
                company = admin.add_company(db, form.name.data or "", _plan(form))
                audit.record(db, g.principal, "create", KIND, company.id,
                             manage_ops.changed({}, _snapshot(company)), state.now())
                company_id = company.id
        except UserError as exc:
            form.name.errors = [*form.name.errors, str(exc)]
        else:
            log.info("console: %s added company %r", g.principal.login, form.name.data)
            flash(f"Company {form.name.data} added.", "ok")
            return redirect(url_for("companies.page", company_id=company_id))
    return render_template("manage/company_form.html", title="New company", form=form,
                           company=None), 400 if form.errors else 200


@bp.get(f"/{ID}")
def page(company_id: int) -> str:
    state = console()
    with transaction(state.factory) as db:
        company = _found(db, company_id)
        people = manage_ops.people(db, g.principal.scope, company.id, "").total
        history = audit.history(db, KIND, company.id)
    return render_template("manage/company.html", title=company.name, company=company,
                           people=people, history=history, bits=bits,
                           actions=STATUS_ACTIONS, form=StatusForm())


@bp.route(f"/{ID}/edit", methods=["GET", "POST"])
def edit(company_id: int) -> Response | tuple[str, int]:
    state = console()
    form = CompanyForm()
    with transaction(state.factory) as db:
        company = _found(db, company_id)
        if not form.is_submitted():
            form.process(data={**_snapshot(company),
                               "bandwidth_up": bits(company.bandwidth_up).replace("-", ""),
                               "bandwidth_down": bits(company.bandwidth_down).replace("-", ""),
                               "max_session": company.max_session or "",
                               "vlan": company.vlan or ""})
            return render_template("manage/company_form.html", title=f"Edit {company.name}",
                                   form=form, company=company), 200
        name = company.name
    if accepted(form, _rules()):
        try:
            with transaction(state.factory) as db:
                before = _snapshot(_found(db, company_id))
                after = admin.set_company(db, name, _plan(form), form.name.data)
                audit.record(db, g.principal, "edit", KIND, company_id,
                             manage_ops.changed(before, _snapshot(after)), state.now())
        except UserError as exc:
            form.name.errors = [*form.name.errors, str(exc)]
        else:
            log.info("console: %s changed company %r", g.principal.login, name)
            flash(f"Company {form.name.data} changed.", "ok")
            return redirect(url_for("companies.page", company_id=company_id))
    return render_template("manage/company_form.html", title=f"Edit {name}", form=form,
                           company=company), 400 if form.errors else 200


@bp.post(f"/{ID}/status")
def status(company_id: int) -> Response:
    """Suspend, close or reactivate: admin.set_company with the new status."""
    state = console()
    form = StatusForm()
    wanted = form.status.data or ""
    if not form.validate_on_submit() or wanted not in STATUS_ACTIONS:
        flash("Choose suspend, close or reactivate.", "bad")
        return redirect(url_for("companies.page", company_id=company_id))
    with transaction(state.factory) as db:
        company = _found(db, company_id)
        before = company.status.value
        admin.set_company(db, company.name, admin.CompanyTerms(status=wanted))
        audit.record(db, g.principal, STATUS_ACTIONS[wanted], KIND, company.id,
                     f"status: {before} → {wanted}", state.now())
        name = company.name
    log.info("console: %s set company %r %s", g.principal.login, name, wanted)
    flash(f"{name} is now {wanted}.", "ok")
    return redirect(url_for("companies.page", company_id=company_id))
