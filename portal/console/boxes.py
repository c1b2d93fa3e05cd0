"""Boxes: each gateway's last contact and live clients; the silent ones in red."""

from __future__ import annotations

from flask import Blueprint, g, render_template

from passerelle.radius.db import transaction

from .boxes_ops import Health, boxes
from .state import console

bp = Blueprint("boxes", __name__, url_prefix="/boxes")


@bp.get("/")
def index() -> str:
    state = console()
    now = state.now()
    with transaction(state.factory) as db:
        rows = boxes(db, g.principal.scope, now, state.settings.interim_interval)
    silent = sum(1 for row in rows if row.health is not Health.ok)
    return render_template("boxes.html", title="Boxes", rows=rows, now=now, silent=silent,
                           interval=state.settings.interim_interval, Health=Health)
