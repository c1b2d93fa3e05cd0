"""`passerelle demo`: the central server with the demo network, on 127.0.0.1.

It migrates a SQLite database in the demo data directory, loads the demo
data when the database is empty, prints how to try it with radtest and
radclient, and runs the same server as `passerelle radius serve`.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from passerelle.errors import UserError

from . import db
from . import demo_data as demo
from .admin_cli import now, unit_of_work
from .handler import HandlerSettings
from .models import Network, Person
from .server import ServerConfig, bind_udp, serve

LISTEN = "127.0.0.1"


def how_to(url: str, auth_port: int, acct_port: int) -> str:
    """What to type in another terminal to see the server work."""
    pw, secret = demo.PASSWORD, demo.LOCAL_SECRET
    auth, acct = f"{LISTEN}:{auth_port}", f"{LISTEN}:{acct_port}"
    start = (f'User-Name = "{demo.ACCEPTED}", Acct-Status-Type = Start, '
             'Acct-Session-Id = "demo-1", NAS-Identifier = "axis-gw", '
             'Calling-Station-Id = "02-00-5e-00-53-01", Framed-IP-Address = 198.51.100.10')
    stop = start.replace("Start,", "Stop, Acct-Session-Time = 600, Acct-Terminate-Cause = "
                                   "User-Request,")
    db_arg = shlex.quote(url)
    return "\n".join([
        f"Passerelle demo: the central RADIUS server on {LISTEN}, the demo network in {url}",
        "",
        demo.Report.logins_text(),
        "",
        "Try it from another terminal (radtest and radclient: Debian freeradius-utils):",
        "",
        "  # Access-Accept, with Session-Timeout, Class, the Wi-Fi key in Tunnel-Password:",
        f"  radtest {demo.ACCEPTED} {pw} {auth} 0 {secret}",
        "  # the same with CHAP:",
        f"  radtest -t chap {demo.CHAP_USER} {pw} {auth} 0 {secret}",
        "  # Access-Reject, Reply-Message \"company-suspended: ...\":",
        f"  radtest {demo.SUSPENDED} {pw} {auth} 0 {secret}",
        "  # accounting: a session starts, then stops after 10 minutes, charged once:",
        f"  echo '{start}' | radclient -x {acct} acct {secret}",
        f"  echo '{stop}' | radclient -x {acct} acct {secret}",
        f"  passerelle admin credit show {demo.ACCEPTED} --db {db_arg}",
        "",
        f"Manage the data: passerelle admin --help (add --db {db_arg})",
        "Stop the server with Ctrl-C.",
        "",
    ])


def _check_ports(auth_port: int, acct_port: int) -> None:
    # A clear line instead of a traceback when FreeRADIUS (or another demo)
    # already holds the ports.
    for name, port in (("--auth-port", auth_port), ("--acct-port", acct_port)):
        try:
            bind_udp(LISTEN, port, reuse_port=False).close()
        except OSError as exc:
            raise UserError(f"cannot listen on {LISTEN} UDP port {port} ({name}): "
                            f"{exc.strerror}; is FreeRADIUS or another demo running?") from None


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
    if auth_port == acct_port:
        raise UserError("--auth-port and --acct-port must differ")
    data = (data or db.data_dir()).absolute()
    # The server key (CHAP secrets) belongs with the demo's database.
    os.environ["PASSERELLE_DATA"] = str(data)
    url = f"sqlite:///{data / 'passerelle.db'}"
    try:
        engine = db.make_engine(url)
    except OSError as exc:
        raise UserError(f"cannot use the data directory {data}: {exc.strerror}") from None
    try:
        db.upgrade(engine)
    except DBAPIError as exc:
        raise UserError(f"cannot use the database {url}: {exc.orig}") from None
    finally:
        engine.dispose()
    with unit_of_work(url) as s:
        empty = not s.scalar(select(func.count(Network.id))) and \
            not s.scalar(select(func.count(Person.id)))
        if empty:
            click.echo(demo.load(s, now()).summary())
        else:
            click.echo(f"using the data already in {url} (load the demo people with: "
                       f"passerelle demo-data --db {shlex.quote(url)})")
    _check_ports(auth_port, acct_port)
    running = None
    if site:
        from passerelle.gateway import demo_site

        running = demo_site.start(url, data)
    try:
        click.echo(how_to(url, auth_port, acct_port))
        if running is not None:
            click.echo(demo_site.how_to(running))
        serve(ServerConfig(db_url=url, listen=LISTEN, auth_port=auth_port,
                           acct_port=acct_port, workers=1, settings=HandlerSettings()))
    finally:
        if running is not None:
            running.close()
