"""`passerelle db`, `passerelle admin ...` and `passerelle demo-data`.

A thin layer over admin.py: parse options, open one transaction, call the
operation, print. Every error an operator can cause becomes a one-line
``UserError``; database trouble (unreachable, no schema) too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError

from . import admin as ops
from . import db, people_csv, tokens, webhooks
from . import demo_data as demo

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    return click.option(
        "--db", "db_url", envvar="PASSERELLE_DB", default=None, metavar="URL",
        help="Database URL, e.g. postgresql://user@host/db or sqlite:///path "
             "(default: PASSERELLE_DB, else passerelle.db in the data directory).",
    )(func)


class Whole(click.ParamType):
    """A whole number, parsed by admin.py's rule (a bad one is one line, as
    every error here; admin.py then checks its range)."""

    name = "integer"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        return value if isinstance(value, int) else ops.parse_whole(str(value), self.what)


def safe_url(url: str) -> str:
    """The URL without its password, to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_engine(db_url: str | None) -> Engine:
    url = db_url or db.default_url()
    try:
        return db.make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UserError(f"bad database URL {safe_url(url)!r}: {exc}") from None
    except ImportError as exc:
        raise UserError(f"no driver for the database URL {safe_url(url)!r}: {exc}") from None
    except OSError as exc:
        # make_engine makes the directory of a SQLite file.
        raise UserError(f"cannot use the database {safe_url(url)}: {exc.strerror}: "
                        f"{exc.filename}") from None


def _db_error(url: str, exc: DBAPIError) -> UserError:
    first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    if "no such table" in first or type(exc.orig).__name__ == "UndefinedTable":
        return UserError(f"the database {safe_url(url)} has no schema yet: run "
                         "'passerelle db upgrade' first")
    if isinstance(exc, IntegrityError):
        return UserError(f"the database refused the change: {first}")
    return UserError(f"cannot use the database {safe_url(url)}: {first}")


@contextmanager
def unit_of_work(db_url: str | None) -> Iterator[DB]:
    """One transaction on the database; its errors become one line."""
    engine = open_engine(db_url)
    try:
        with db.transaction(db.make_sessionmaker(engine)) as session:
            yield session
    except DBAPIError as exc:
        raise _db_error(str(engine.url), exc) from None
    finally:
        engine.dispose()


def read_secret(value: str | None, path: str | None, what: str) -> str | None:
    """A secret from the option, or from a file or stdin ("-").

    The file form keeps secrets out of shell history and ``ps``."""
    if value is not None and path is not None:
        raise UserError(f"give --{what} or --{what}-file, not both")
    if path is None:
        return value
    try:
        text = sys.stdin.readline() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read the {what} from {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"the {what} in {path} is not UTF-8 text") from None
    # Only the line end goes: spaces may be part of the secret.
    return text.splitlines()[0] if text.splitlines() else ""


def need_secret(value: str | None, path: str | None, what: str) -> str:
    found = read_secret(value, path, what)
    if found is None:
        raise UserError(f"give --{what} or --{what}-file (- reads it from stdin)")
    return found


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(c) for c in headers], *[["" if c is None else str(c) for c in r]
                                         for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def hours(seconds: int) -> str:
    """Seconds as h:mm, with a sign (a balance can be negative after an overrun)."""
    sign = "-" if seconds < 0 else ""
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60}:{minutes % 60:02d}"


def bits(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)


# -- db ---------------------------------------------------------------------

@click.group("db")
def db_group() -> None:
    """Database schema."""


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@db_group.command("upgrade")
@db_option
def db_upgrade(db_url: str | None) -> None:
    """Create or migrate the schema to the latest revision."""
    engine = open_engine(db_url)
    try:
        db.upgrade(engine)
        click.echo(f"{safe_url(str(engine.url))}: at revision {_revision(engine)}")
    except DBAPIError as exc:
        raise _db_error(str(engine.url), exc) from None
    finally:
        engine.dispose()


@db_group.command("current")
@db_option
def db_current(db_url: str | None) -> None:
    """Show the schema revision, and whether it is the latest."""
    engine = open_engine(db_url)
    try:
        current = _revision(engine)
    except DBAPIError as exc:
        raise _db_error(str(engine.url), exc) from None
    finally:
        engine.dispose()
    head = ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head()
    if current is None:
        click.echo("no schema (run: passerelle db upgrade)")
    elif current == head:
        click.echo(f"{current} (latest)")
    else:
        click.echo(f"{current} (latest is {head}: run passerelle db upgrade)")


# -- admin ------------------------------------------------------------------

@click.group()
def admin() -> None:
    """Manage networks, sites, gateways, companies, people, credit and console operators."""


@admin.group()
def network() -> None:
    """Partner networks of sites."""


@network.command("add")
@click.argument("name")
@db_option
def network_add(name: str, db_url: str | None) -> None:
    """Add the network NAME."""
    with unit_of_work(db_url) as s:
        ops.add_network(s, name)
    click.echo(f"network {name.strip()!r} added")


@network.command("list")
@db_option
def network_list(db_url: str | None) -> None:
    """List the networks."""
    with unit_of_work(db_url) as s:
        rows = [(n.name, count) for n, count in ops.list_networks(s)]
    table(("network", "sites"), rows)


@network.command("set")
@click.argument("name")
@click.option("--name", "new_name", required=True, help="The new name.")
@db_option
def network_set(name: str, new_name: str, db_url: str | None) -> None:
    """Rename the network NAME."""
    with unit_of_work(db_url) as s:
        ops.rename_network(s, name, new_name)
    click.echo(f"network {name!r} renamed {new_name.strip()!r}")


@network.command("remove")
@click.argument("name")
@db_option
def network_remove(name: str, db_url: str | None) -> None:
    """Remove the network NAME (it must have no sites)."""
    with unit_of_work(db_url) as s:
        ops.remove_network(s, name)
    click.echo(f"network {name!r} removed")


# -- sites ------------------------------------------------------------------

def site_options(func: F) -> F:
    for decorator in reversed([
        click.option("--network", help="The partner network it belongs to."),
        click.option("--category", type=Whole("category"), help="Stars: 1, 2 or 3."),
        click.option("--capacity", type=Whole("capacity"),
                     help="Seats (gives the occupancy rate)."),
        click.option("--city", help="Where it is."),
        click.option("--opens", metavar="HH:MM", help="Local opening time."),
        click.option("--closes", metavar="HH:MM", help="Local closing time (24:00 = midnight)."),
        click.option("--days", help="Opening days: ISO weekdays (12345 = Monday-Friday), "
                                    "mon-fri, mon-sat or all."),
        click.option("--staffed/--unstaffed", default=None,
                     help="Whether people work there (an unstaffed site is automated)."),
        click.option("--timezone", help="Time zone of the hours (Europe/Brussels)."),
    ]):
        func = decorator(func)
    return func


def _site_row(site: Any) -> tuple[object, ...]:
    hours_ = f"{site.opens}-{site.closes}" if site.opens else "always"
    return (site.name, site.network.name, "*" * site.category, site.capacity, site.city,
            hours_, site.open_days, "yes" if site.staffed else "no", site.timezone)


@admin.group()
def site() -> None:
    """Telework sites."""


@site.command("add")
@click.argument("name")
@site_options
@db_option
def site_add(name: str, network: str | None, category: int | None, capacity: int | None,
             city: str | None, opens: str | None, closes: str | None, days: str | None,
             staffed: bool | None, timezone: str | None, db_url: str | None) -> None:
    """Add the site NAME (without --opens/--closes it is open around the clock)."""
    if network is None:
        raise UserError("give the site's --network")
    with unit_of_work(db_url) as s:
        ops.add_site(s, name, network, category=1 if category is None else category,
                     capacity=capacity or 0, city=city or "", opens=opens, closes=closes,
                     days=days or "1234567", staffed=True if staffed is None else staffed,
                     timezone=timezone or "Europe/Brussels")
    click.echo(f"site {name.strip()!r} added")


@site.command("list")
@db_option
def site_list(db_url: str | None) -> None:
    """List the sites."""
    with unit_of_work(db_url) as s:
        rows = [_site_row(x) for x in ops.list_sites(s)]
    table(("site", "network", "category", "seats", "city", "hours", "days", "staffed",
           "timezone"), rows)


@site.command("set")
@click.argument("name")
@click.option("--name", "new_name", help="A new name.")
@site_options
@click.option("--always-open", is_flag=True, help="Drop the hours: open around the clock.")
@db_option
def site_set(name: str, new_name: str | None, network: str | None, category: int | None,
             capacity: int | None, city: str | None, opens: str | None, closes: str | None,
             days: str | None, staffed: bool | None, timezone: str | None, always_open: bool,
             db_url: str | None) -> None:
    """Change the site NAME."""
    changes = ops.SiteChanges(name=new_name, network=network, category=category,
                              capacity=capacity, city=city, opens=opens, closes=closes,
                              always_open=always_open, days=days, staffed=staffed,
                              timezone=timezone)
    with unit_of_work(db_url) as s:
        ops.set_site(s, name, changes)
    click.echo(f"site {name!r} changed")


@site.command("remove")
@click.argument("name")
@db_option
def site_remove(name: str, db_url: str | None) -> None:
    """Remove the site NAME (it must have no gateways and no history)."""
    with unit_of_work(db_url) as s:
        ops.remove_site(s, name)
    click.echo(f"site {name!r} removed")


# -- gateways ---------------------------------------------------------------

def secret_options(func: F) -> F:
    func = click.option("--secret-file", metavar="FILE",
                        help="Read the secret from FILE's first line (- = stdin), "
                             "to keep it out of shell history.")(func)
    return click.option("--secret", help="The RADIUS shared secret.")(func)


@admin.group()
def gateway() -> None:
    """Gateways: the RADIUS clients (NAS) of the sites."""


@gateway.command("add")
@click.argument("identifier")
@click.option("--site", required=True, help="The site it serves.")
@click.option("--ip", required=True, help="The address its RADIUS requests come from.")
@secret_options
@click.option("--coa-port", type=Whole("port"), default=3799, show_default=True,
              help="Its RFC 5176 (Disconnect/CoA) port.")
@click.option("--relaxed-message-authenticator", is_flag=True,
              help="Accept its Access-Requests without Message-Authenticator "
                   "(old NAS only: exposed to BlastRADIUS).")
@db_option
def gateway_add(identifier: str, site: str, ip: str, secret: str | None,
                secret_file: str | None, coa_port: int, relaxed_message_authenticator: bool,
                db_url: str | None) -> None:
    """Add the gateway IDENTIFIER (its NAS-Identifier)."""
    value = need_secret(secret, secret_file, "secret")
    with unit_of_work(db_url) as s:
        ops.add_gateway(s, identifier, site, ip, value, coa_port=coa_port,
                        require_ma=not relaxed_message_authenticator)
    click.echo(f"gateway {identifier.strip()!r} added")


@gateway.command("list")
@click.option("--show-secrets", is_flag=True, help="Print the shared secrets too.")
@db_option
def gateway_list(show_secrets: bool, db_url: str | None) -> None:
    """List the gateways (secrets hidden unless --show-secrets)."""
    with unit_of_work(db_url) as s:
        rows = [(g.identifier, g.site.name, g.ip_address, g.coa_port,
                 "required" if g.require_message_authenticator else "relaxed",
                 g.secret if show_secrets else "(hidden)",
                 g.last_seen.strftime("%Y-%m-%d %H:%M") if g.last_seen else "never")
                for g in ops.list_gateways(s)]
    table(("gateway", "site", "ip", "coa-port", "message-auth", "secret", "last seen"), rows)


@gateway.command("set")
@click.argument("identifier")
@click.option("--name", "new_identifier", help="A new identifier.")
@click.option("--site", help="Move it to this site.")
@click.option("--ip", help="A new source address.")
@secret_options
@click.option("--coa-port", type=Whole("port"), help="Its RFC 5176 port.")
@click.option("--require-message-authenticator/--relaxed-message-authenticator",
              "require_ma", default=None,
              help="Require Message-Authenticator on its Access-Requests (the default), or "
                   "not (old NAS only).")
@click.option("--no-require-message-authenticator", "no_require_ma", is_flag=True,
              hidden=True)
@db_option
def gateway_set(identifier: str, new_identifier: str | None, site: str | None,
                ip: str | None, secret: str | None, secret_file: str | None,
                coa_port: int | None, require_ma: bool | None, no_require_ma: bool,
                db_url: str | None) -> None:
    """Change the gateway IDENTIFIER."""
    if no_require_ma:
        # The spelling docs/radius.md used first; same as --relaxed-message-authenticator.
        require_ma = False
    changes = ops.GatewayChanges(identifier=new_identifier, site=site, ip=ip,
                                 secret=read_secret(secret, secret_file, "secret"),
                                 coa_port=coa_port, require_ma=require_ma)
    with unit_of_work(db_url) as s:
        ops.set_gateway(s, identifier, changes)
    click.echo(f"gateway {identifier!r} changed")


@gateway.command("remove")
@click.argument("identifier")
@db_option
def gateway_remove(identifier: str, db_url: str | None) -> None:
    """Remove the gateway IDENTIFIER (it must have no sessions)."""
    with unit_of_work(db_url) as s:
        ops.remove_gateway(s, identifier)
    click.echo(f"gateway {identifier!r} removed")


@gateway.command("code")
@click.argument("identifier")
@click.option("--hours", type=click.IntRange(1, 24 * 30), default=48, show_default=True,
              help="How long the code may be used.")
@db_option
def gateway_code(identifier: str, hours: int, db_url: str | None) -> None:
    """A one-time enrolment code for the box of gateway IDENTIFIER (its
    earlier unused codes stop working)."""
    from datetime import timedelta

    from . import enrolment

    with unit_of_work(db_url) as s:
        code, row = enrolment.issue_code(s, ops.get_gateway(s, identifier), now(),
                                         timedelta(hours=hours))
        expires = row.expires
    click.echo(f"enrolment code for {identifier.strip()}: {code}")
    click.echo(f"valid once, until {expires:%Y-%m-%d %H:%M} UTC; on the box: "
               f"passerelle gateway enroll --code {code} --centre https://CENTRE")


@gateway.command("revoke")
@click.argument("identifier")
@db_option
def gateway_revoke(identifier: str, db_url: str | None) -> None:
    """A stolen box: revoke its certificates, withdraw its codes and replace
    its RADIUS secret. Enrol a new box with `gateway code`."""
    from . import enrolment

    with unit_of_work(db_url) as s:
        count = enrolment.revoke(s, ops.get_gateway(s, identifier), now())
    click.echo(f"gateway {identifier.strip()!r} revoked: {count} certificate(s), its secret "
               "replaced; it can no longer reach the centre")


# -- companies --------------------------------------------------------------

def plan_options(func: F) -> F:
    for decorator in reversed([
        click.option("--status", help="active, suspended or closed."),
        click.option("--payment", help="Payment standing: ok or overdue."),
        click.option("--categories", help="Site categories its people may use, e.g. 123 or 12."),
        click.option("--services", help="Services its people may use, comma-separated (wifi)."),
        click.option("--bandwidth-up", metavar="BITS",
                     help="Upload cap in bit/s (2M, 500k), or none."),
        click.option("--bandwidth-down", metavar="BITS",
                     help="Download cap in bit/s (10M), or none."),
        click.option("--max-session", metavar="DURATION",
                     help="Longest session: seconds, or 90m, 8h; or none."),
        click.option("--vlan", help="The VLAN its people get at the sites (1-4094), or none."),
        click.option("--max-sessions", metavar="N",
                     help="Sessions (devices) one person may have open at once, 1-1000, "
                          "or none (no limit). Not --max-session, the longest session."),
    ]):
        func = decorator(func)
    return func


@admin.group()
def company() -> None:
    """Member companies and their plans."""


@company.command("add")
@click.argument("name")
@plan_options
@db_option
def company_add(name: str, status: str | None, payment: str | None, categories: str | None,
                services: str | None, bandwidth_up: str | None, bandwidth_down: str | None,
                max_session: str | None, vlan: str | None, max_sessions: str | None,
                db_url: str | None) -> None:
    """Add the company NAME (default: active, paid up, every category, wifi,
    no limit of sessions at once)."""
    plan = ops.CompanyTerms(status, payment, categories, services, bandwidth_up, bandwidth_down,
                    max_session, vlan, max_sessions)
    with unit_of_work(db_url) as s:
        ops.add_company(s, name, plan)
    click.echo(f"company {name.strip()!r} added")


@company.command("list")
@db_option
def company_list(db_url: str | None) -> None:
    """List the companies and their plans."""
    with unit_of_work(db_url) as s:
        rows = [(c.name, c.status.value, c.payment.value, c.categories, c.services,
                 f"{bits(c.bandwidth_up)}/{bits(c.bandwidth_down)}",
                 hours(c.max_session) if c.max_session else "-", c.max_sessions or "-",
                 c.vlan or "-", count)
                for c, count in ops.list_companies(s)]
    table(("company", "status", "payment", "categories", "services", "up/down",
           "max session", "at once", "vlan", "people"), rows)


@company.command("set")
@click.argument("name")
@click.option("--name", "new_name", help="A new name.")
@plan_options
@db_option
def company_set(name: str, new_name: str | None, status: str | None, payment: str | None,
                categories: str | None, services: str | None, bandwidth_up: str | None,
                bandwidth_down: str | None, max_session: str | None, vlan: str | None,
                max_sessions: str | None, db_url: str | None) -> None:
    """Change the company NAME: its standing or its plan. Suspending or
    closing it disconnects its people's live sessions; new caps reach them
    by CoA."""
    plan = ops.CompanyTerms(status, payment, categories, services, bandwidth_up, bandwidth_down,
                    max_session, vlan, max_sessions)
    with unit_of_work(db_url) as s:
        ops.set_company(s, name, plan, new_name)
    click.echo(f"company {name!r} changed")


@company.command("remove")
@click.argument("name")
@db_option
def company_remove(name: str, db_url: str | None) -> None:
    """Remove the company NAME (it must have no people)."""
    with unit_of_work(db_url) as s:
        ops.remove_company(s, name)
    click.echo(f"company {name!r} removed")


# -- people -----------------------------------------------------------------

def password_options(func: F) -> F:
    func = click.option("--password-file", metavar="FILE",
                        help="Read the password from FILE's first line (- = stdin), "
                             "to keep it out of shell history.")(func)
    return click.option("--password", help="The password (1 to 128 octets).")(func)


@admin.group()
def person() -> None:
    """People: the employees who log in."""


@person.command("add")
@click.argument("login")
@click.option("--company", required=True, help="Their employer.")
@password_options
@click.option("--name", default="", help="Their full name.")
@click.option("--chap", is_flag=True,
              help="Also keep the password encrypted with the server key, so CHAP works.")
@click.option("--inactive", is_flag=True, help="Add the account disabled.")
@click.option("--language", default="fr", show_default=True, help="fr, nl or en.")
@db_option
def person_add(login: str, company: str, password: str | None, password_file: str | None,
               name: str, chap: bool, inactive: bool, language: str,
               db_url: str | None) -> None:
    """Add the person LOGIN (their e-mail address)."""
    value = need_secret(password, password_file, "password")
    with unit_of_work(db_url) as s:
        ops.add_person(s, login, company, value, name=name, chap=chap, active=not inactive,
                       language=language)
    click.echo(f"person {login.strip()!r} added")


@person.command("list")
@click.option("--company", help="Only this company's people.")
@db_option
def person_list(company: str | None, db_url: str | None) -> None:
    """List the people, with their credit left (h:mm)."""
    with unit_of_work(db_url) as s:
        rows = [(p.login, p.name, p.company.name, "yes" if p.active else "no",
                 "yes" if p.chap_secret else "no", p.language, hours(left))
                for p, left in ops.list_people(s, company)]
    table(("login", "name", "company", "active", "chap", "language", "credit"), rows)


@person.command("set")
@click.argument("login")
@click.option("--login", "new_login", help="A new login.")
@click.option("--company", help="A new employer.")
@password_options
@click.option("--name", help="Their full name.")
@click.option("--chap/--no-chap", default=None,
              help="Keep (with --password) or drop the CHAP secret.")
@click.option("--active/--inactive", default=None, help="Enable or disable the account.")
@click.option("--language", help="fr, nl or en.")
@db_option
def person_set(login: str, new_login: str | None, company: str | None, password: str | None,
               password_file: str | None, name: str | None, chap: bool | None,
               active: bool | None, language: str | None, db_url: str | None) -> None:
    """Change the person LOGIN."""
    changes = ops.PersonChanges(login=new_login, company=company,
                                password=read_secret(password, password_file, "password"),
                                name=name, chap=chap, active=active, language=language)
    with unit_of_work(db_url) as s:
        ops.set_person(s, login, changes)
    click.echo(f"person {login!r} changed")


@person.command("remove")
@click.argument("login")
@db_option
def person_remove(login: str, db_url: str | None) -> None:
    """Remove the person LOGIN and their credit ledger (sessions stay, unlinked)."""
    with unit_of_work(db_url) as s:
        ops.remove_person(s, login)
    click.echo(f"person {login!r} removed")


# -- credit -----------------------------------------------------------------

@admin.group()
def credit() -> None:
    """The credit ledger: top-ups and what sessions used."""


# ignore_unknown_options: so "-5" reaches the command as MINUTES and gets a
# clear error, instead of click's "no such option".
@credit.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("login")
@click.argument("minutes")
@click.option("--note", default="", help="Why (an invoice number...).")
@db_option
def credit_add(login: str, minutes: str, note: str, db_url: str | None) -> None:
    """Top up LOGIN's credit by MINUTES."""
    count = ops.parse_whole(minutes, "number of minutes")
    with unit_of_work(db_url) as s:
        ops.add_credit(s, login, count, now(), note)
        left = ops.show_credit(s, login).balance
    click.echo(f"{login}: +{hours(count * 60)}, credit now {hours(left)}")


@credit.command("show")
@click.argument("login")
@db_option
def credit_show(login: str, db_url: str | None) -> None:
    """Show LOGIN's credit and ledger."""
    with unit_of_work(db_url) as s:
        statement = ops.show_credit(s, login)
    click.echo(f"{statement.person.login}: {hours(statement.balance)} left "
               f"({statement.balance // 60} minutes)")
    table(("date (UTC)", "kind", "h:mm", "session", "note"),
          [(e.created.strftime("%Y-%m-%d %H:%M"), e.kind.value,
            ("+" if e.seconds > 0 else "") + hours(e.seconds), e.session_id or "", e.note)
           for e in statement.entries])


# -- operators of the console ------------------------------------------------

def operator_password_options(func: F) -> F:
    func = click.option("--password-file", metavar="FILE",
                        help="Read the password from FILE's first line (- = stdin), "
                             "to keep it out of shell history.")(func)
    return click.option("--password", help="The console password (12 characters or "
                                            "more).")(func)


@admin.group()
def operator() -> None:
    """Operators of the ops console and their roles."""


@operator.command("add")
@click.argument("login")
@click.option("--role", required=True,
              help="network-ops (everything), site-manager (their sites' sessions and "
                   "boxes) or company-manager (their company's people and sessions).")
@click.option("--company", help="A company manager's company.")
@click.option("--site", "sites", multiple=True, help="A site manager's site (repeat).")
@operator_password_options
@click.option("--name", default="", help="Their full name.")
@db_option
def operator_add(login: str, role: str, company: str | None, sites: tuple[str, ...],
                 password: str | None, password_file: str | None, name: str,
                 db_url: str | None) -> None:
    """Add the operator LOGIN (their e-mail address)."""
    value = need_secret(password, password_file, "password")
    with unit_of_work(db_url) as s:
        ops.add_operator(s, login, value, role, now(), name=name, company=company,
                         sites=list(sites))
    click.echo(f"operator {login.strip()!r} added")


@operator.command("list")
@db_option
def operator_list(db_url: str | None) -> None:
    """List the operators, their roles and what they see."""
    with unit_of_work(db_url) as s:
        rows = [(o.login, o.name, ops.role_word(o.role),
                 o.company.name if o.company else ", ".join(x.name for x in o.sites) or "all",
                 "yes" if o.active else "no",
                 o.last_sign_in.strftime("%Y-%m-%d %H:%M") if o.last_sign_in else "never")
                for o in ops.list_operators(s)]
    table(("login", "name", "role", "scope", "active", "last sign-in (UTC)"), rows)


@operator.command("set")
@click.argument("login")
@click.option("--login", "new_login", help="A new login.")
@click.option("--role", help="network-ops, site-manager or company-manager.")
@click.option("--company", help="A company manager's company.")
@click.option("--site", "sites", multiple=True,
              help="A site manager's site (repeat; replaces their sites).")
@operator_password_options
@click.option("--name", help="Their full name.")
@click.option("--active/--inactive", default=None,
              help="Enable or disable the account (disabling signs them out).")
@db_option
def operator_set(login: str, new_login: str | None, role: str | None, company: str | None,
                 sites: tuple[str, ...], password: str | None, password_file: str | None,
                 name: str | None, active: bool | None, db_url: str | None) -> None:
    """Change the operator LOGIN (a new password, role or scope signs them out)."""
    changes = ops.OperatorChanges(login=new_login, name=name,
                                  password=read_secret(password, password_file, "password"),
                                  role=role, company=company,
                                  sites=list(sites) if sites else None, active=active)
    with unit_of_work(db_url) as s:
        ops.set_operator(s, login, changes)
    click.echo(f"operator {login!r} changed")


@operator.command("remove")
@click.argument("login")
@db_option
def operator_remove(login: str, db_url: str | None) -> None:
    """Remove the operator LOGIN."""
    with unit_of_work(db_url) as s:
        ops.remove_operator(s, login)
    click.echo(f"operator {login!r} removed")


# -- personal Wi-Fi keys ------------------------------------------------------

@admin.group()
def key() -> None:
    """Personal Wi-Fi keys: one per person, the same at every site."""


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


@key.command("show")
@click.argument("login")
@db_option
def key_show(login: str, db_url: str | None) -> None:
    """Show LOGIN's keys (serials and dates; the key itself is shown to its owner only)."""
    with unit_of_work(db_url) as s:
        person, history = ops.key_history(s, login)
        rows = [(k.serial, k.ssid, _when(k.created), _when(k.revoked),
                 "revoked" if k.revoked else "in force") for k in history]
    if not rows:
        click.echo(f"{person.login}: no key yet (one is issued at the first check-in)")
        return
    table(("serial", "ssid", "created (UTC)", "revoked (UTC)", "state"), rows)


@key.command("rotate")
@click.argument("login")
@db_option
def key_rotate(login: str, db_url: str | None) -> None:
    """Give LOGIN a new key; the old one stops at every site within a minute."""
    with unit_of_work(db_url) as s:
        made = ops.rotate_key(s, login, now())
        serial = made.serial
    click.echo(f"key of {login!r} rotated: serial {serial} (shown on their portal key page)")


@key.command("revoke")
@click.argument("login")
@db_option
def key_revoke(login: str, db_url: str | None) -> None:
    """Revoke LOGIN's key at every site within a minute (a new one comes at check-in)."""
    with unit_of_work(db_url) as s:
        gone = ops.revoke_key(s, login, now())
        serial = gone.serial
    click.echo(f"key {serial} of {login!r} revoked")


@key.command("ssid")
@click.argument("network")
@click.argument("ssid")
@db_option
def key_ssid(network: str, ssid: str, db_url: str | None) -> None:
    """Set NETWORK's private SSID (the keys' PMKs are derived again)."""
    with unit_of_work(db_url) as s:
        count = ops.set_private_ssid(s, network, ssid)
    click.echo(f"network {network!r}: private SSID {ssid.strip()!r}, {count} keys follow; "
               "set the same wifi.ssid on every box and access point")


# -- demo data --------------------------------------------------------------

@click.command("demo-data")
@db_option
def demo_data(db_url: str | None) -> None:
    """Load the demo network, companies and people (again: adds what is missing)."""
    with unit_of_work(db_url) as s:
        report = demo.load(s, now())
    click.echo(report.summary())
    click.echo(report.logins_text())


# -- people from a CSV file ----------------------------------------------------

@person.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@db_option
def person_import(file: str, db_url: str | None) -> None:
    """Add the people of a CSV FILE (- = stdin), all or none.

    Columns: login, company (required), name, password, language, in a
    header line. Every bad line is listed with its number; an empty
    password gets a generated one, printed once."""
    try:
        data = sys.stdin.buffer.read(people_csv.MAX_BYTES + 1) if file == "-" else \
            Path(file).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from None
    parsed = people_csv.parse(data)
    try:
        if parsed.problems:
            raise people_csv.ImportRefused(parsed.problems)
        with unit_of_work(db_url) as s:
            added = people_csv.add_people(s, parsed.people)
    except people_csv.ImportRefused as exc:
        for problem in exc.problems:
            click.echo(f"{file}: {problem}", err=True)
        raise
    click.echo(f"{len(added)} people imported")
    generated = [(p.login, p.password) for p in added if p.generated]
    if generated:
        click.echo("Generated passwords (shown this once):")
        table(("login", "password"), generated)
# -- tokens of the partner API -------------------------------------------------

@admin.group()
def token() -> None:
    """Bearer tokens of the partner API (docs/api.md)."""


@token.command("add")
@click.argument("name")
@click.option("--role", required=True,
              help="partner (provisions and reads the whole network) or company (reads "
                   "its company's data only).")
@click.option("--company", help="A company token's company (its name).")
@db_option
def token_add(name: str, role: str, company: str | None, db_url: str | None) -> None:
    """Make the token NAME and print it, once: only its SHA-256 is kept."""
    with unit_of_work(db_url) as s:
        _made, clear = tokens.add_token(s, name, role, now(), company=company)
    click.echo(f"token {name.strip()!r} added; give it to its holder now, it is not "
               "shown again:", err=True)
    click.echo(clear)


@token.command("list")
@db_option
def token_list(db_url: str | None) -> None:
    """List the tokens (never the tokens themselves)."""
    with unit_of_work(db_url) as s:
        rows = [(t.name, t.role.value, t.company.name if t.company else "all",
                 t.created.strftime("%Y-%m-%d %H:%M"),
                 t.last_used.strftime("%Y-%m-%d %H:%M") if t.last_used else "never",
                 t.revoked.strftime("%Y-%m-%d %H:%M") if t.revoked else "")
                for t in tokens.list_tokens(s)]
    table(("name", "role", "scope", "created (UTC)", "last used", "revoked"), rows)


@token.command("revoke")
@click.argument("name")
@db_option
def token_revoke(name: str, db_url: str | None) -> None:
    """Revoke the token NAME: its next call is refused."""
    with unit_of_work(db_url) as s:
        tokens.revoke_token(s, name, now())
    click.echo(f"token {name!r} revoked")


# -- webhooks of the partner API ---------------------------------------------------

@admin.group()
def webhook() -> None:
    """Webhooks of the partner API: session start/stop and credit low (docs/api.md)."""


@webhook.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--events", default=",".join(webhooks.EVENTS), show_default=True,
              help="A comma list of the events to send.")
@click.option("--company", help="Only this company's events (default: the whole network).")
@click.option("--secret-file", metavar="FILE",
              help="Read the signing secret from FILE's first line (- = stdin); "
                   "default: a new one, printed once.")
@db_option
def webhook_add(name: str, url: str, events: str, company: str | None,
                secret_file: str | None, db_url: str | None) -> None:
    """POST the events to URL, signed with a secret (HMAC-SHA256)."""
    given = read_secret(None, secret_file, "secret")
    with unit_of_work(db_url) as s:
        _hook, secret = webhooks.add_webhook(s, name, url, now(), events=events,
                                             company=company, secret=given)
    click.echo(f"webhook {name.strip()!r} added", err=True)
    if given is None:
        click.echo("its signing secret (give it to the receiver; not shown again):", err=True)
        click.echo(secret)


@webhook.command("list")
@db_option
def webhook_list(db_url: str | None) -> None:
    """List the webhooks."""
    with unit_of_work(db_url) as s:
        rows = [(h.name, h.url, h.events, h.company.name if h.company else "all",
                 "yes" if h.active else "no")
                for h in webhooks.list_webhooks(s)]
    table(("name", "url", "events", "scope", "active"), rows)


@webhook.command("remove")
@click.argument("name")
@db_option
def webhook_remove(name: str, db_url: str | None) -> None:
    """Remove the webhook NAME, its queue and its record."""
    with unit_of_work(db_url) as s:
        webhooks.remove_webhook(s, name)
    click.echo(f"webhook {name!r} removed")


@webhook.command("attempts")
@click.argument("name")
@db_option
def webhook_attempts(name: str, db_url: str | None) -> None:
    """The last 50 delivery attempts of the webhook NAME."""
    with unit_of_work(db_url) as s:
        rows = [(a.at.strftime("%Y-%m-%d %H:%M:%S"), d.event_key, d.attempts,
                 a.status or "-", a.error, f"{a.milliseconds} ms", d.outcome or "pending")
                for d, a in webhooks.attempts_of(s, name)]
    table(("at (UTC)", "event", "attempt", "status", "error", "time", "delivery"), rows)


@webhook.command("run")
@click.option("--once", is_flag=True, help="One pass, then exit.")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=10.0,
              show_default=True, help="Seconds between passes.")
@db_option
def webhook_run(once: bool, interval: float, db_url: str | None) -> None:
    """Find new events and deliver what is due, every INTERVAL seconds (one
    worker per database)."""
    import time

    engine = open_engine(db_url)
    factory = db.make_sessionmaker(engine)
    try:
        while True:
            with db.transaction(factory) as s:
                queued = webhooks.poll(s, now())
            tried = webhooks.deliver_due(factory, now)
            if queued or tried:
                click.echo(f"{queued} queued, {tried} attempted", err=True)
            if once:
                return
            time.sleep(interval)
    except DBAPIError as exc:
        raise _db_error(str(engine.url), exc) from None
    finally:
        engine.dispose()
# -- accounting records set aside ----------------------------------------------

@admin.group()
def accounting() -> None:
    """Accounting records the centre answered but could not store."""


@accounting.group()
def quarantine() -> None:
    """Records set aside for ops (a value beyond range, a row the database refused)."""


@quarantine.command("list")
@click.option("--limit", type=Whole("limit"), default=50, show_default=True,
              help="Show at most this many, the newest first.")
@click.option("--attributes", "show_attributes", is_flag=True,
              help="Also print each record's attributes as sent (JSON).")
@db_option
def quarantine_list(limit: int, show_attributes: bool, db_url: str | None) -> None:
    """List the accounting records set aside, the newest first."""
    from sqlalchemy import select

    from .models import AccountingQuarantine as Q

    with unit_of_work(db_url) as s:
        rows = s.scalars(select(Q).order_by(Q.received.desc(), Q.id.desc()).limit(limit)).all()
    table(("received (UTC)", "gateway", "status", "session", "reason"),
          [(q.received.strftime("%Y-%m-%d %H:%M:%S"), q.nasidentifier or q.nasipaddress,
            q.status, q.acctsessionid, q.reason) for q in rows])
    if show_attributes:
        for q in rows:
            click.echo(f"{q.id}: {q.attributes}")
