"""The partner API: JSON under /api/v1, bearer tokens (docs/api.md)."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from .. import access
from .errors import from_http
from .views import PREFIX, bp

__all__ = ["PREFIX", "bp", "from_http", "install"]


def install(app: Flask, csrf: CSRFProtect) -> None:
    """The blueprint, without the console's CSRF check (no cookie signs a
    call in: a bearer token does, which another site cannot send)."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
    missing = sorted(rule.endpoint for rule in app.url_map.iter_rules()
                     if rule.endpoint.startswith("api.")
                     and rule.endpoint not in access.API_ROLES)
    if missing:
        raise RuntimeError(f"API endpoints without a token rule: {', '.join(missing)}")
