"""Sites and their gateways (the boxes): lists, a page each, create / edit.

Network ops change them; a site manager sees their own sites and boxes,
read-only (access.py). Changes go through radius/admin.py and are recorded
in the audit log; a gateway's shared secret is never shown, nor recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session as DB
from werkzeug.wrappers import Response

from passerelle.errors import UserError
from passerelle.radius import admin
from passerelle.radius.db import transaction
from passerelle.radius.models import Gateway, Site

from . import audit, manage_ops
from .filters import MAX_ID, optional_id
from .forms import GatewayForm, SiteForm, accepted
from .state import console

log = logging.getLogger("passerelle.portal")

sites_bp = Blueprint("sites", __name__, url_prefix="/sites")
gateways_bp = Blueprint("gateways", __name__, url_prefix="/gateways")
SITE_ID = f"<int(max={MAX_ID}):site_id>"
GATEWAY_ID = f"<int(max={MAX_ID}):gateway_id>"
MAX_PORT = 65535


# -- sites ---------------------------------------------------------------------------

def _site(db: DB, site_id: int) -> Site:
    found = manage_ops.site(db, g.principal.scope, site_id)
    if found is None:
        abort(404)
    return found


def _site_snapshot(site: Site) -> dict[str, Any]:
    return {"name": site.name, "network": site.network.name, "category": site.category,
            "capacity": site.capacity, "city": site.city, "opens": site.opens or "",
            "closes": site.closes or "", "days": site.open_days, "staffed": site.staffed,
            "timezone": site.timezone}


def _whole(rule: Any, what: str) -> Any:
    return lambda v: rule(admin.parse_whole(v, what))


def _site_rules(form: SiteForm) -> dict[str, Any]:
    return {
        "name": lambda v: admin.clean_name(v, "the name", 128),
        "category": _whole(admin.clean_category, "category"),
        "capacity": _whole(admin.clean_capacity, "capacity") if form.capacity.data else str,
        "city": lambda v: admin.clean_name(v, "the city", 128) if v else "",
        "opens": lambda v: admin.check_hours(admin.clean_hhmm(v, "opening") if v else None,
                                             form.closes.data or None),
        "closes": lambda v: admin.clean_hhmm(v, "closing") if v else None,
        "days": admin.clean_days,
        "timezone": admin.clean_timezone,
    }


def _site_choices(db: DB, form: SiteForm) -> None:
    form.network.choices = manage_ops.network_names(db)


def _site_blame(form: SiteForm, exc: UserError) -> None:
    where = form.network if "network" in str(exc) else form.name
    where.errors = [*where.errors, str(exc)]


@sites_bp.get("/")
def index() -> str:
    state = console()
    with transaction(state.factory) as db:
        rows = manage_ops.sites(db, g.principal.scope)
    return render_template("manage/sites.html", title="Sites", rows=rows)


@sites_bp.route("/new", methods=["GET", "POST"])
def new() -> Response | tuple[str, int]:
    state = console()
    form = SiteForm()
    with transaction(state.factory) as db:
        _site_choices(db, form)
    if not form.is_submitted():
        form.process(data={"category": "1", "capacity": "0", "days": "12345",
                           "staffed": True, "timezone": "Europe/Brussels"})
    elif accepted(form, _site_rules(form)):
        try:
            with transaction(state.factory) as db:
                site = admin.add_site(
                    db, form.name.data or "", form.network.data or "",
                    category=admin.parse_whole(form.category.data or "", "category"),
                    capacity=admin.parse_whole(form.capacity.data or "0", "capacity"),
                    city=form.city.data or "", opens=form.opens.data or None,
                    closes=form.closes.data or None, days=form.days.data or "",
                    staffed=bool(form.staffed.data), timezone=form.timezone.data or "")
                audit.record(db, g.principal, "create", "site", site.id,
                             manage_ops.changed({}, _site_snapshot(site)), state.now())
                site_id = site.id
        except UserError as exc:
            _site_blame(form, exc)
        else:
            log.info("console: %s added site %r", g.principal.login, form.name.data)
            flash(f"Site {form.name.data} added.", "ok")
            return redirect(url_for("sites.page", site_id=site_id))
    return render_template("manage/site_form.html", title="New site", form=form,
                           site=None), 400 if form.errors else 200


@sites_bp.get(f"/{SITE_ID}")
def page(site_id: int) -> str:
    state = console()
    with transaction(state.factory) as db:
        site = _site(db, site_id)
        gateways = manage_ops.gateways(db, site.id)
        history = audit.history(db, "site", site.id)
        network = site.network.name
    return render_template("manage/site.html", title=site.name, site=site, network=network,
                           gateways=gateways, history=history)


@sites_bp.route(f"/{SITE_ID}/edit", methods=["GET", "POST"])
def edit(site_id: int) -> Response | tuple[str, int]:
    state = console()
    form = SiteForm()
    with transaction(state.factory) as db:
        site = _site(db, site_id)
        _site_choices(db, form)
        if not form.is_submitted():
            form.process(data=_site_snapshot(site))
        name = site.name
    if form.is_submitted() and accepted(form, _site_rules(form)):
        opens, closes = form.opens.data or None, form.closes.data or None
        changes = admin.SiteChanges(
            name=form.name.data, network=form.network.data,
            category=admin.parse_whole(form.category.data or "", "category"),
            capacity=admin.parse_whole(form.capacity.data or "0", "capacity"),
            city=form.city.data or "", opens=opens, closes=closes,
            always_open=opens is None and closes is None, days=form.days.data,
            staffed=bool(form.staffed.data), timezone=form.timezone.data)
        try:
            with transaction(state.factory) as db:
                before = _site_snapshot(_site(db, site_id))
                after = admin.set_site(db, name, changes)
                audit.record(db, g.principal, "edit", "site", site_id,
                             manage_ops.changed(before, _site_snapshot(after)), state.now())
        except UserError as exc:
            _site_blame(form, exc)
        else:
            log.info("console: %s changed site %r", g.principal.login, name)
            flash(f"Site {form.name.data} changed.", "ok")
            return redirect(url_for("sites.page", site_id=site_id))
    return render_template("manage/site_form.html", title=f"Edit {name}", form=form,
                           site=site), 400 if form.errors else 200


# -- gateways ------------------------------------------------------------------------

def _gateway(db: DB, gateway_id: int) -> Gateway:
    found = manage_ops.gateway(db, g.principal.scope, gateway_id)
    if found is None:
        abort(404)
    return found


def _gateway_snapshot(gateway: Gateway) -> dict[str, Any]:
    # The secret is not in it: never shown, never in the history.
    return {"identifier": gateway.identifier, "site": gateway.site.name,
            "ip": gateway.ip_address, "coa_port": gateway.coa_port,
            "require_ma": gateway.require_message_authenticator}


def _gateway_rules(secret_needed: bool) -> dict[str, Any]:
    return {
        "identifier": lambda v: admin.clean_name(v, "the identifier", 64),
        "ip": admin.clean_ip,
        "secret": admin.clean_secret if secret_needed else (
            lambda v: admin.clean_secret(v) if v else ""),
        "coa_port": _whole(lambda n: admin.check_range(n, "CoA port", 1, MAX_PORT),
                           "CoA port"),
    }


def _gateway_blame(form: GatewayForm, exc: UserError) -> None:
    text = str(exc)
    where = (form.ip if "IP address" in text else form.site if "site" in text
             else form.identifier)
    where.errors = [*where.errors, text]


@gateways_bp.route("/new", methods=["GET", "POST"], endpoint="new")
def new_gateway() -> Response | tuple[str, int]:
    state = console()
    form = GatewayForm()
    with transaction(state.factory) as db:
        form.site.choices = manage_ops.site_choices(db)
        if not form.is_submitted():
            try:
                wanted = optional_id(request.args, "site")
            except UserError:
                wanted = None  # a bad link: the form starts without a site
            site = manage_ops.site(db, g.principal.scope, wanted) if wanted else None
            form.process(data={"site": site.name if site else None, "coa_port": "3799",
                               "require_ma": True})
    if form.is_submitted() and accepted(form, _gateway_rules(True)):
        try:
            with transaction(state.factory) as db:
                gateway = admin.add_gateway(
                    db, form.identifier.data or "", form.site.data or "", form.ip.data or "",
                    form.secret.data or "",
                    coa_port=admin.parse_whole(form.coa_port.data or "", "CoA port"),
                    require_ma=bool(form.require_ma.data))
                audit.record(db, g.principal, "create", "gateway", gateway.id,
                             manage_ops.changed({}, _gateway_snapshot(gateway)), state.now())
                gateway_id = gateway.id
        except UserError as exc:
            _gateway_blame(form, exc)
        else:
            log.info("console: %s added gateway %r", g.principal.login, form.identifier.data)
            flash(f"Gateway {form.identifier.data} added.", "ok")
            return redirect(url_for("gateways.page", gateway_id=gateway_id))
    return render_template("manage/gateway_form.html", title="New gateway", form=form,
                           gateway=None), 400 if form.errors else 200


@gateways_bp.get(f"/{GATEWAY_ID}", endpoint="page")
def gateway_page(gateway_id: int) -> str:
    state = console()
    with transaction(state.factory) as db:
        gateway = _gateway(db, gateway_id)
        history = audit.history(db, "gateway", gateway.id)
        site = gateway.site
    return render_template("manage/gateway.html", title=gateway.identifier, gateway=gateway,
                           site=site, history=history)


@gateways_bp.route(f"/{GATEWAY_ID}/edit", methods=["GET", "POST"], endpoint="edit")
def edit_gateway(gateway_id: int) -> Response | tuple[str, int]:
    state = console()
    form = GatewayForm()
    with transaction(state.factory) as db:
        gateway = _gateway(db, gateway_id)
        form.site.choices = manage_ops.site_choices(db)
        if not form.is_submitted():
            form.process(data={**_gateway_snapshot(gateway),
                               "coa_port": str(gateway.coa_port)})
        identifier = gateway.identifier
    if form.is_submitted() and accepted(form, _gateway_rules(False)):
        changes = admin.GatewayChanges(
            identifier=form.identifier.data, site=form.site.data, ip=form.ip.data,
            secret=form.secret.data or None,
            coa_port=admin.parse_whole(form.coa_port.data or "", "CoA port"),
            require_ma=bool(form.require_ma.data))
        try:
            with transaction(state.factory) as db:
                before = _gateway_snapshot(_gateway(db, gateway_id))
                after = admin.set_gateway(db, identifier, changes)
                detail = manage_ops.changed(before, _gateway_snapshot(after))
                if changes.secret is not None:
                    detail = ", ".join(filter(None, [detail, "new shared secret"]))
                audit.record(db, g.principal, "edit", "gateway", gateway_id, detail,
                             state.now())
        except UserError as exc:
            _gateway_blame(form, exc)
        else:
            log.info("console: %s changed gateway %r", g.principal.login, identifier)
            flash(f"Gateway {form.identifier.data} changed.", "ok")
            return redirect(url_for("gateways.page", gateway_id=gateway_id))
    return render_template("manage/gateway_form.html", title=f"Edit {identifier}", form=form,
                           gateway=gateway), 400 if form.errors else 200
