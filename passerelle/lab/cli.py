"""`passerelle demo`: the central server with the demo network on 127.0.0.1
and, with --site, a whole site beside it in the lab's network namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import click

from passerelle.errors import UserError


@click.command("demo")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory of the demo (default: PASSERELLE_DATA or "
                   "~/.local/share/passerelle).")
@click.option("--auth-port", default=1812, show_default=True, type=click.IntRange(1, 65535))
@click.option("--acct-port", default=1813, show_default=True, type=click.IntRange(1, 65535))
@click.option("--site", is_flag=True,
              help="Also run a whole site in network namespaces: a laptop, the box with its "
                   "portal, the internet (needs root, nftables, dnsmasq).")
def demo_command(data: Path | None, auth_port: int, acct_port: int, site: bool) -> None:
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
    running = None
    if site:
        from . import demo_site

        running = demo_site.start(url, data)
    try:
        click.echo(centre.how_to(url, auth_port, acct_port))
        if running is not None:
            click.echo(demo_site.how_to(running))
        centre.serve_centre(url, auth_port, acct_port)
    finally:
        if running is not None:
            running.close()


def register(root: click.Group) -> None:
    root.add_command(demo_command)
