"""`passerelle console run`: the ops console on the centre."""

from __future__ import annotations

import ipaddress

import click

from passerelle.errors import UserError

DEFAULT_LISTEN = "127.0.0.1:8090"


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT, with an IPv6 address in brackets: [::1]:8090."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise UserError(f"bad --listen {value!r}: give an IP address and a port, e.g. "
                        f"{DEFAULT_LISTEN} or [::1]:8090") from None
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"bad --listen {value!r}: the port is 0 (any free one) to 65535")
    return host, int(port)


@click.group()
def console() -> None:
    """The ops console: live sessions of every site, Disconnect, boxes."""


@console.command("run")
@click.option("--db", "db_url", envvar="PASSERELLE_DB", default=None, metavar="URL",
              help="The centre's database URL (default: PASSERELLE_DB, else passerelle.db "
                   "in the data directory).")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Where to serve plain HTTP; put a TLS reverse proxy in front for "
                   "anything but the loopback.")
@click.option("--behind-proxy", is_flag=True,
              help="Trust one reverse proxy's X-Forwarded-For and X-Forwarded-Proto.")
@click.option("--interim", type=click.IntRange(60, 86400), default=None, metavar="SECONDS",
              help="The boxes' interim accounting interval: silent longer, a box shows red "
                   "(default: the RADIUS server's).")
@click.option("--refresh", type=click.IntRange(0, 3600), default=None, metavar="SECONDS",
              help="How often the live view refreshes itself (0: never).")
def run(db_url: str | None, listen: str, behind_proxy: bool, interim: int | None,
        refresh: int | None) -> None:
    """Serve the console until SIGTERM. Operators: passerelle admin operator add."""
    from dataclasses import replace

    from passerelle.radius import db
    from passerelle.radius.admin_cli import open_engine

    from .app import create_app
    from .schema import check_schema
    from .serve import serve
    from .settings import ConsoleSettings

    host, port = parse_listen(listen)
    engine = open_engine(db_url)
    check_schema(engine)
    settings = ConsoleSettings()
    if interim is not None:
        settings = replace(settings, interim_interval=interim)
    if refresh is not None:
        settings = replace(settings, refresh=refresh)
    app = create_app(db.make_sessionmaker(engine), settings=settings, behind_proxy=behind_proxy)
    try:
        serve(app, host, port)
    finally:
        engine.dispose()


def register(root: click.Group) -> None:
    root.add_command(console)
