"""`passerelle demo`: the central server with the demo network on 127.0.0.1
and, with --site, a whole site beside it in the lab's network namespaces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from passerelle.errors import UserError

if TYPE_CHECKING:
    from passerelle.portal.console.serve import Listening


@click.command("demo")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory of the demo (default: PASSERELLE_DATA or "
                   "~/.local/share/passerelle).")
@click.option("--auth-port", default=1812, show_default=True, type=click.IntRange(1, 65535))
@click.option("--acct-port", default=1813, show_default=True, type=click.IntRange(1, 65535))
@click.option("--console-port", default=8090, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port of the ops console on 127.0.0.1 (0: any free one).")
@click.option("--site", is_flag=True,
              help="Also run a whole site in network namespaces: a laptop, the box with its "
                   "portal, the internet (needs root, nftables, dnsmasq).")
def demo_command(data: Path | None, auth_port: int, acct_port: int, console_port: int,
                 site: bool) -> None:
    """Run the central server with the demo network on 127.0.0.1 (and, with
    --site, a whole site beside it)."""
    # Imported here: `passerelle --help` and the other commands need none of it.
    from passerelle.radius import db
    from passerelle.radius import demo_cli as centre

    if auth_port == acct_port:
        raise UserError("--auth-port and --acct-port must differ")
    data = (data or db.data_dir()).absolute()
    # The server key (CHAP secrets) belongs with the demo's database.
    os.environ["PASSERELLE_DATA"] = str(data)
    url = centre.prepare(data)
    centre.check_ports(auth_port, acct_port)
    console = start_console(url, console_port)
    running = None
    try:
        if site:
            from . import demo_site

            running = demo_site.start(url, data)
        click.echo(centre.how_to(url, auth_port, acct_port))
        click.echo(console_how_to(console.url))
        if running is not None:
            click.echo(demo_site.how_to(running))
        centre.serve_centre(url, auth_port, acct_port)
    finally:
        if running is not None:
            running.close()
        console.stop()


# The demo's network operator on the ops console (a demo secret, like the people's).
CONSOLE_OPERATOR = "ops@demo.example"
CONSOLE_PASSWORD = "demo-console-2024"


def start_console(url: str, port: int) -> Listening:
    """The ops console on 127.0.0.1:``port``, serving, with the demo's
    network operator (created when missing)."""
    from sqlalchemy import select

    from passerelle.portal.console.app import create_app
    from passerelle.portal.console.serve import Listening
    from passerelle.radius import admin, db
    from passerelle.radius.admin_cli import now, unit_of_work
    from passerelle.radius.models import Operator

    with unit_of_work(url) as s:
        if s.scalar(select(Operator.id).where(Operator.login == CONSOLE_OPERATOR)) is None:
            admin.add_operator(s, CONSOLE_OPERATOR, CONSOLE_PASSWORD, "network-ops", now(),
                               name="Demo operator")
    listening = Listening(create_app(db.make_sessionmaker(db.make_engine(url))),
                          "127.0.0.1", port)
    listening.start()
    return listening


def console_how_to(console_url: str) -> str:
    return (f"Ops console: {console_url} (sign in as {CONSOLE_OPERATOR}, password "
            f"{CONSOLE_PASSWORD}): live sessions of every site, Disconnect, boxes.\n")


def register(root: click.Group) -> None:
    root.add_command(demo_command)
