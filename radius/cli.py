"""Commands of the central part: database, administration, RADIUS server."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    from .admin_cli import admin, db_group, demo_data
    from .server_cli import radius

    root.add_command(db_group)
    root.add_command(admin)
    root.add_command(demo_data)
    root.add_command(radius)
