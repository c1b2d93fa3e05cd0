"""The centre's half of `passerelle demo` (the command is passerelle.lab's).

It migrates a SQLite database in the demo data directory, loads the demo
data when the database is empty, prints how to try it with radtest and
radclient, and runs the same server as `passerelle radius serve`.

Every command printed for the reader to run is on a line of its own that
starts with ``PROMPT`` and runs as printed in a new terminal: `passerelle`
is given by its full path, since the virtual environment is not on the
reader's PATH.
"""

from __future__ import annotations

import shlex
import sys
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
PROMPT = "  $ "  # starts every line the reader can run as printed
# This installation's entry point, beside the interpreter (the virtual
# environment's bin).
PASSERELLE = Path(sys.executable).parent / "passerelle"


def passerelle_command() -> str:
    """`passerelle` as the reader types it: by its full path."""
    return shlex.quote(str(PASSERELLE))


def how_to(url: str, auth_port: int, acct_port: int) -> str:
    """What to type in another terminal to see the server work."""
    pw, secret = demo.PASSWORD, demo.LOCAL_SECRET
    auth, acct = f"{LISTEN}:{auth_port}", f"{LISTEN}:{acct_port}"
    start = (f'User-Name = "{demo.ACCEPTED}", Acct-Status-Type = Start, '
             'Acct-Session-Id = "demo-1", NAS-Identifier = "axis-gw", '
             'Calling-Station-Id = "02-00-5e-00-53-01", Framed-IP-Address = 198.51.100.10')
    stop = start.replace("Start,", "Stop, Acct-Session-Time = 600, Acct-Terminate-Cause = "
                                   "User-Request,")
    db_arg, bin_ = shlex.quote(url), passerelle_command()
    return "\n".join([
        f"Passerelle demo: the central RADIUS server on {LISTEN}, the demo network in {url}",
        "",
        demo.LoadSummary.logins_text(),
        "",
        "Try it from another terminal (radtest and radclient: Debian freeradius-utils):",
        "",
        "  # Access-Accept, with Session-Timeout, Class, the Wi-Fi key in Tunnel-Password:",
        f"{PROMPT}radtest {demo.ACCEPTED} {pw} {auth} 0 {secret}",
        "  # the same with CHAP:",
        f"{PROMPT}radtest -t chap {demo.CHAP_USER} {pw} {auth} 0 {secret}",
        "  # Access-Reject, Reply-Message \"company-suspended: ...\":",
        f"{PROMPT}radtest {demo.SUSPENDED} {pw} {auth} 0 {secret}",
        "  # accounting: a session starts, then stops after 10 minutes, charged once:",
        f"{PROMPT}echo '{start}' | radclient -x {acct} acct {secret}",
        f"{PROMPT}echo '{stop}' | radclient -x {acct} acct {secret}",
        f"{PROMPT}{bin_} admin credit show {demo.ACCEPTED} --db {db_arg}",
        "",
        "Manage the data:",
        f"{PROMPT}{bin_} admin --help",
        f"(add --db {db_arg} to each command)",
        "Stop the server with Ctrl-C.",
        "",
    ])


def check_ports(auth_port: int, acct_port: int) -> None:
    # A clear line instead of a traceback when FreeRADIUS (or another demo)
    # already holds the ports.
    for name, port in (("--auth-port", auth_port), ("--acct-port", acct_port)):
        try:
            bind_udp(LISTEN, port, reuse_port=False).close()
        except OSError as exc:
            raise UserError(f"cannot listen on {LISTEN} UDP port {port} ({name}): "
                            f"{exc.strerror}; is FreeRADIUS or another demo running?") from None


def prepare(data: Path) -> str:
    """Migrate the demo's SQLite database in ``data``, load the demo network
    when it is empty, say which; return the database URL."""
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
                       f"{passerelle_command()} demo-data --db {shlex.quote(url)})")
    return url


def serve_centre(url: str, auth_port: int, acct_port: int) -> None:
    """The same server as `passerelle radius serve`, on 127.0.0.1, until stopped."""
    serve(ServerConfig(db_url=url, listen=LISTEN, auth_port=auth_port, acct_port=acct_port,
                       workers=1, settings=HandlerSettings()))
