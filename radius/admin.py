"""Administration operations on the central data, as plain functions.

Each function takes a SQLAlchemy Session (the caller owns the transaction)
and either does what it says or raises ``UserError`` with one line that tells
the operator what is wrong. Input is validated here, at the boundary, so the
command line and the future console share the same rules.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError

from . import codec, keys, ledger, logins, passwords, reach
from .models import (
    AuthLog,
    Company,
    CompanyStatus,
    CreditEntry,
    Gateway,
    Network,
    Operator,
    OperatorRole,
    PaymentStatus,
    Person,
    PersonKey,
    Radacct,
    Site,
    WifiKey,
)

# What RADIUS can carry and what keeps it safe (the rules live in the codec).
MAX_PASSWORD_OCTETS = codec.MAX_PASSWORD
MIN_SECRET_OCTETS = codec.MIN_SECRET
MAX_SECRET_OCTETS = 128
# The ranges numbers must fit, checked before any SQL: an Integer column is
# PostgreSQL's 32-bit integer (SQLite would take more, then fail in Python),
# and a RADIUS integer attribute (Session-Timeout, WISPr bandwidths) is 32
# bits unsigned (RFC 2865 §5). A number the centre stored but cannot send
# made every reply to that company's people fail.
INT_MAX = 2**31 - 1
RADIUS_INT_MAX = 2**32 - 1
MAX_CREDIT_MINUTES = 10_000_000  # 19 years: beyond, a typing error
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_SERVICE_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
# At most 19 digits: no number typed is parsed beyond what a 64-bit column holds.
_WHOLE_RE = re.compile(r"^[+-]?[0-9]{1,19}$")
_SIZE_RE = re.compile(r"^([0-9]{1,19})\s*([kmg]?)$", re.I)
_DURATION_RE = re.compile(r"^([0-9]{1,19})\s*([smh]?)$", re.I)

# Optional numbers in `set` commands are cleared with this word.
NONE_WORDS = ("none", "off", "")


# -- validation -------------------------------------------------------------

def clean_name(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise UserError(f"{what} must not be empty")
    if len(value) > limit:
        raise UserError(f"{what} is longer than {limit} characters: {value[:20]!r}...")
    if not _NAME_RE.match(value):
        raise UserError(f"{what} contains control characters: {value!r}")
    return value


def clean_login(value: str) -> str:
    """The login in its one stored form (see logins.py)."""
    return logins.normalise(value)


def _short(value: object) -> str:
    """A value for an error line: a pasted page of digits is not echoed."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"(a {value.bit_length()}-bit number)"
    text = str(value).strip()
    return text if len(text) <= 24 else text[:20] + "..."


def _shown(value: str) -> str:
    return repr(_short(value))


def parse_whole(value: str, what: str) -> int:
    """A whole number typed by an operator (ASCII digits, at most 19)."""
    text = value.strip()
    if not _WHOLE_RE.match(text):
        raise UserError(f"bad {what} {_shown(text)}: a whole number")
    return int(text)


def check_range(value: int, what: str, low: int, high: int) -> int:
    """``value`` if it is a whole number from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"bad {what} {_short(value)}: {low} to {high}")
    return value


def clean_password(value: str) -> str:
    octets = len(value.encode())
    if octets == 0:
        raise UserError("the password must not be empty")
    if octets > MAX_PASSWORD_OCTETS:
        raise UserError(f"the password is {octets} octets; RADIUS carries at most "
                        f"{MAX_PASSWORD_OCTETS}")
    return value


def clean_secret(value: str) -> str:
    if not value:
        raise UserError("the shared secret must not be empty")
    if len(value) > MAX_SECRET_OCTETS:
        raise UserError(f"the shared secret is longer than {MAX_SECRET_OCTETS} characters")
    if not value.isascii() or not value.isprintable():
        raise UserError("the shared secret must be printable ASCII (what radclient and "
                        "gateways can type)")
    if len(value) < MIN_SECRET_OCTETS:
        raise UserError(f"the shared secret is {len(value)} characters: give at least "
                        f"{MIN_SECRET_OCTETS} (RFC 2865 §3), e.g. openssl rand -base64 24")
    return value


def clean_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise UserError(f"bad IP address {value!r}") from None


def clean_hhmm(value: str, what: str) -> str:
    value = value.strip()
    if not _HHMM_RE.match(value):
        raise UserError(f"bad time for {what} {value!r}: give HH:MM, 00:00 to 24:00")
    return value


def clean_days(value: str) -> str:
    """ISO weekdays: "12345" (Monday to Friday), or "mon-fri", "mon-sat", "all"."""
    words = {"all": "1234567", "mon-fri": "12345", "mon-sat": "123456", "weekdays": "12345"}
    value = words.get(value.strip().lower(), value.strip())
    if not value or any(c not in "1234567" for c in value):
        raise UserError(f"bad days {value!r}: give ISO weekdays such as 12345 (1 = Monday), "
                        "or mon-fri, mon-sat, all")
    return "".join(sorted(set(value)))


def clean_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {value!r} (e.g. Europe/Brussels)") from None
    return value


def clean_category(value: int) -> int:
    if isinstance(value, bool) or value not in (1, 2, 3):
        raise UserError(f"bad category {_short(value)}: a site has 1, 2 or 3 stars")
    return value


def clean_capacity(value: int) -> int:
    return check_range(value, "capacity", 0, INT_MAX)


def clean_categories(value: str) -> str:
    chars = value.replace(",", "").replace(" ", "")
    if not chars or any(c not in "123" for c in chars):
        raise UserError(f"bad categories {value!r}: give the star ratings allowed, e.g. 123 "
                        "or 12")
    return "".join(sorted(set(chars)))


def clean_services(value: str) -> str:
    items = [s.strip().lower() for s in value.split(",") if s.strip()]
    if not items:
        raise UserError("give at least one service, e.g. wifi")
    for item in items:
        if not _SERVICE_RE.match(item):
            raise UserError(f"bad service name {item!r}: lower-case letters, digits, dashes")
    return ",".join(dict.fromkeys(items))


def parse_status(value: str) -> CompanyStatus:
    try:
        return CompanyStatus(value.strip().lower())
    except ValueError:
        raise UserError(f"bad status {value!r}: active, suspended or closed") from None


def parse_payment(value: str) -> PaymentStatus:
    try:
        return PaymentStatus(value.strip().lower())
    except ValueError:
        raise UserError(f"bad payment standing {value!r}: ok or overdue") from None


def parse_bandwidth(value: str, what: str) -> int | None:
    """Bit/s, with an optional k, M or G suffix (10M = 10,000,000); none clears.
    At most 4294967295 (about 4.29G): a RADIUS integer carries no more."""
    if value.strip().lower() in NONE_WORDS:
        return None
    match = _SIZE_RE.match(value.strip())
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[
        match.group(2).lower()] if match else 0
    if not match or not 1 <= int(match.group(1)) * scale <= RADIUS_INT_MAX:
        raise UserError(f"bad {what} {_shown(value)}: bit/s from 1 to {RADIUS_INT_MAX} "
                        "(what RADIUS carries), such as 2000000 or 2M, or none")
    return int(match.group(1)) * scale


def parse_duration(value: str, what: str) -> int | None:
    """Seconds, or with an s, m or h suffix (90m, 8h); none clears."""
    if value.strip().lower() in NONE_WORDS:
        return None
    match = _DURATION_RE.match(value.strip())
    scale = {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2).lower()] if match else 0
    if not match or not 1 <= int(match.group(1)) * scale <= INT_MAX:
        raise UserError(f"bad {what} {_shown(value)}: 1 to {INT_MAX} seconds, or 90m, 8h; "
                        "or none")
    return int(match.group(1)) * scale


def parse_vlan(value: str) -> int | None:
    if value.strip().lower() in NONE_WORDS:
        return None
    if not re.fullmatch(r"[0-9]{1,4}", value.strip()) or not 1 <= int(value) <= 4094:
        raise UserError(f"bad VLAN {_shown(value)}: 1 to 4094, or none")
    return int(value)


MAX_SESSIONS_AT_ONCE = 1000


def parse_max_sessions(value: str) -> int | None:
    """The sessions one person may have open at once: 1 to 1000, or "none"
    (no limit)."""
    if value.strip().lower() in NONE_WORDS:
        return None
    return check_range(parse_whole(value, "--max-sessions"), "--max-sessions", 1,
                       MAX_SESSIONS_AT_ONCE)


def check_hours(opens: str | None, closes: str | None) -> None:
    if (opens is None) != (closes is None):
        raise UserError("give both --opens and --closes, or neither (open around the clock)")
    # A closing time at or before the opening is on the next day (policy.py):
    # night hours are fine, only "opens at 24:00" means nothing.
    if opens == "24:00":
        raise UserError("a site opens at 00:00 at the latest (24:00 is only a closing time)")


# -- lookups ----------------------------------------------------------------

def get_network(db: DB, name: str) -> Network:
    found = db.scalar(select(Network).where(Network.name == name))
    if found is None:
        raise UserError(f"unknown network {name!r} (see: passerelle admin network list)")
    return found


def get_site(db: DB, name: str) -> Site:
    found = db.scalar(select(Site).where(Site.name == name))
    if found is None:
        raise UserError(f"unknown site {name!r} (see: passerelle admin site list)")
    return found


def get_gateway(db: DB, identifier: str) -> Gateway:
    found = db.scalar(select(Gateway).where(Gateway.identifier == identifier))
    if found is None:
        raise UserError(f"unknown gateway {identifier!r} (see: passerelle admin gateway list)")
    return found


def get_company(db: DB, name: str) -> Company:
    found = db.scalar(select(Company).where(Company.name == name))
    if found is None:
        raise UserError(f"unknown company {name!r} (see: passerelle admin company list)")
    return found


def get_person(db: DB, login: str) -> Person:
    # Stored logins are in their normal form; one stored before it (a
    # mistake to fix) is still found as typed.
    key = logins.lookup_key(login) or login.strip()
    found = db.scalar(select(Person).where(Person.login == key))
    if found is None and key != login.strip():
        found = db.scalar(select(Person).where(Person.login == login.strip()))
    if found is None:
        raise UserError(f"unknown person {login!r} (see: passerelle admin person list)")
    return found


def _count(db: DB, column: InstrumentedAttribute[Any], value: int) -> int:
    return int(db.scalar(select(func.count()).where(column == value)) or 0)


# -- networks ---------------------------------------------------------------

def add_network(db: DB, name: str) -> Network:
    name = clean_name(name, "a network name", 64)
    if db.scalar(select(Network).where(Network.name == name)) is not None:
        raise UserError(f"network {name!r} already exists")
    network = Network(name=name)
    db.add(network)
    db.flush()
    return network


def list_networks(db: DB) -> list[tuple[Network, int]]:
    """Each network with its number of sites."""
    rows = db.execute(
        select(Network, func.count(Site.id)).outerjoin(Site).group_by(Network.id)
        .order_by(Network.name)
    ).all()
    return [(network, int(count)) for network, count in rows]


def rename_network(db: DB, name: str, new_name: str) -> Network:
    network = get_network(db, name)
    new_name = clean_name(new_name, "a network name", 64)
    if new_name != name and db.scalar(select(Network).where(Network.name == new_name)):
        raise UserError(f"network {new_name!r} already exists")
    network.name = new_name
    db.flush()
    return network


def remove_network(db: DB, name: str) -> None:
    network = get_network(db, name)
    sites = _count(db, Site.network_id, network.id)
    if sites:
        raise UserError(f"network {name!r} still has {sites} site(s): move or remove them first")
    db.delete(network)
    db.flush()


# -- sites ------------------------------------------------------------------

@dataclass
class SiteChanges:
    """What `site set` changes; None leaves a field as it is."""

    name: str | None = None
    network: str | None = None
    category: int | None = None
    capacity: int | None = None
    city: str | None = None
    opens: str | None = None
    closes: str | None = None
    always_open: bool = False
    days: str | None = None
    staffed: bool | None = None
    timezone: str | None = None


def add_site(db: DB, name: str, network: str, *, category: int = 1, capacity: int = 0,
             city: str = "", opens: str | None = None, closes: str | None = None,
             days: str = "1234567", staffed: bool = True,
             timezone: str = "Europe/Brussels") -> Site:
    name = clean_name(name, "a site name", 128)
    if db.scalar(select(Site).where(Site.name == name)) is not None:
        raise UserError(f"site {name!r} already exists")
    net = get_network(db, network)
    capacity = clean_capacity(capacity)
    opens = clean_hhmm(opens, "--opens") if opens is not None else None
    closes = clean_hhmm(closes, "--closes") if closes is not None else None
    check_hours(opens, closes)
    site = Site(name=name, network=net, category=clean_category(category), capacity=capacity,
                city=clean_name(city, "a city", 128) if city else "", opens=opens,
                closes=closes, open_days=clean_days(days), staffed=staffed,
                timezone=clean_timezone(timezone))
    db.add(site)
    db.flush()
    return site


def list_sites(db: DB) -> list[Site]:
    return list(db.scalars(select(Site).join(Network).order_by(Network.name, Site.name)))


def set_site(db: DB, name: str, changes: SiteChanges) -> Site:
    site = get_site(db, name)
    if changes.name is not None:
        new_name = clean_name(changes.name, "a site name", 128)
        if new_name != site.name and db.scalar(select(Site).where(Site.name == new_name)):
            raise UserError(f"site {new_name!r} already exists")
        site.name = new_name
    if changes.network is not None:
        site.network = get_network(db, changes.network)
    if changes.category is not None:
        site.category = clean_category(changes.category)
    if changes.capacity is not None:
        site.capacity = clean_capacity(changes.capacity)
    if changes.city is not None:
        site.city = clean_name(changes.city, "a city", 128) if changes.city else ""
    if changes.always_open:
        if changes.opens is not None or changes.closes is not None:
            raise UserError("--always-open and --opens/--closes contradict each other")
        site.opens = site.closes = None
    if changes.opens is not None:
        site.opens = clean_hhmm(changes.opens, "--opens")
    if changes.closes is not None:
        site.closes = clean_hhmm(changes.closes, "--closes")
    check_hours(site.opens, site.closes)
    if changes.days is not None:
        site.open_days = clean_days(changes.days)
    if changes.staffed is not None:
        site.staffed = changes.staffed
    if changes.timezone is not None:
        site.timezone = clean_timezone(changes.timezone)
    db.flush()
    return site


def remove_site(db: DB, name: str) -> None:
    site = get_site(db, name)
    gateways = _count(db, Gateway.site_id, site.id)
    if gateways:
        raise UserError(f"site {name!r} still has {gateways} gateway(s): remove them first")
    history = _count(db, Radacct.site_id, site.id) + _count(db, AuthLog.site_id, site.id)
    if history:
        raise UserError(f"site {name!r} has {history} session(s) or log line(s) in its "
                        "history; it cannot be removed")
    db.delete(site)
    db.flush()


# -- gateways ---------------------------------------------------------------

@dataclass
class GatewayChanges:
    identifier: str | None = None
    site: str | None = None
    ip: str | None = None
    secret: str | None = field(default=None, repr=False)
    coa_port: int | None = None
    require_ma: bool | None = None


def _check_port(port: int) -> int:
    return check_range(port, "port", 1, 65535)


def _ip_free(db: DB, ip: str, gateway: Gateway | None = None) -> None:
    other = db.scalar(select(Gateway).where(Gateway.ip_address == ip))
    if other is not None and other is not gateway:
        raise UserError(f"IP address {ip} is already gateway {other.identifier!r}'s")


def add_gateway(db: DB, identifier: str, site: str, ip: str, secret: str, *,
                coa_port: int = 3799, require_ma: bool = True) -> Gateway:
    identifier = clean_name(identifier, "a gateway identifier", 64)
    if db.scalar(select(Gateway).where(Gateway.identifier == identifier)) is not None:
        raise UserError(f"gateway {identifier!r} already exists")
    the_site = get_site(db, site)
    address = clean_ip(ip)
    _ip_free(db, address)
    gateway = Gateway(identifier=identifier, site=the_site, ip_address=address,
                      secret=clean_secret(secret), coa_port=_check_port(coa_port),
                      require_message_authenticator=require_ma)
    db.add(gateway)
    db.flush()
    return gateway


def list_gateways(db: DB) -> list[Gateway]:
    return list(db.scalars(select(Gateway).join(Site).order_by(Site.name, Gateway.identifier)))


def set_gateway(db: DB, identifier: str, changes: GatewayChanges) -> Gateway:
    gateway = get_gateway(db, identifier)
    if changes.identifier is not None:
        new_id = clean_name(changes.identifier, "a gateway identifier", 64)
        if new_id != gateway.identifier and db.scalar(
                select(Gateway).where(Gateway.identifier == new_id)):
            raise UserError(f"gateway {new_id!r} already exists")
        gateway.identifier = new_id
    if changes.site is not None:
        gateway.site = get_site(db, changes.site)
    if changes.ip is not None:
        address = clean_ip(changes.ip)
        _ip_free(db, address, gateway)
        gateway.ip_address = address
    if changes.secret is not None:
        gateway.secret = clean_secret(changes.secret)
    if changes.coa_port is not None:
        gateway.coa_port = _check_port(changes.coa_port)
    if changes.require_ma is not None:
        gateway.require_message_authenticator = changes.require_ma
    db.flush()
    return gateway


def remove_gateway(db: DB, identifier: str) -> None:
    gateway = get_gateway(db, identifier)
    history = _count(db, Radacct.gateway_id, gateway.id) + _count(db, WifiKey.gateway_id,
                                                                  gateway.id)
    if history:
        raise UserError(f"gateway {identifier!r} has {history} session(s) or key(s) in its "
                        "history; change it with 'gateway set' instead (new --ip, --secret)")
    db.delete(gateway)
    db.flush()


# -- companies --------------------------------------------------------------

@dataclass
class CompanyTerms:
    """A company's standing and plan, as typed by the operator; None leaves a
    field as it is (in `set`) or takes the default (in `add`). The caps are
    strings because "none" is a value: no cap."""

    status: str | None = None
    payment: str | None = None
    categories: str | None = None
    services: str | None = None
    bandwidth_up: str | None = None
    bandwidth_down: str | None = None
    max_session: str | None = None
    vlan: str | None = None
    max_sessions: str | None = None  # sessions at once; "none": no limit


def _apply_plan(company: Company, plan: CompanyTerms) -> None:
    if plan.status is not None:
        company.status = parse_status(plan.status)
    if plan.payment is not None:
        company.payment = parse_payment(plan.payment)
    if plan.categories is not None:
        company.categories = clean_categories(plan.categories)
    if plan.services is not None:
        company.services = clean_services(plan.services)
    if plan.bandwidth_up is not None:
        company.bandwidth_up = parse_bandwidth(plan.bandwidth_up, "--bandwidth-up")
    if plan.bandwidth_down is not None:
        company.bandwidth_down = parse_bandwidth(plan.bandwidth_down, "--bandwidth-down")
    if plan.max_session is not None:
        company.max_session = parse_duration(plan.max_session, "--max-session")
    if plan.vlan is not None:
        company.vlan = parse_vlan(plan.vlan)
    if plan.max_sessions is not None:
        company.max_sessions = parse_max_sessions(plan.max_sessions)


def add_company(db: DB, name: str, plan: CompanyTerms | None = None) -> Company:
    name = clean_name(name, "a company name", 128)
    if db.scalar(select(Company).where(Company.name == name)) is not None:
        raise UserError(f"company {name!r} already exists")
    company = Company(name=name, status=CompanyStatus.active, payment=PaymentStatus.ok,
                      categories="123", services="wifi")
    _apply_plan(company, plan or CompanyTerms())
    db.add(company)
    db.flush()
    return company


def list_companies(db: DB) -> list[tuple[Company, int]]:
    """Each company with its number of people."""
    rows = db.execute(
        select(Company, func.count(Person.id)).outerjoin(Person).group_by(Company.id)
        .order_by(Company.name)
    ).all()
    return [(company, int(count)) for company, count in rows]


def set_company(db: DB, name: str, plan: CompanyTerms, new_name: str | None = None) -> Company:
    company = get_company(db, name)
    if new_name is not None:
        new_name = clean_name(new_name, "a company name", 128)
        if new_name != company.name and db.scalar(select(Company).where(Company.name == new_name)):
            raise UserError(f"company {new_name!r} already exists")
        company.name = new_name
    before = (company.status, company.bandwidth_up, company.bandwidth_down)
    _apply_plan(company, plan)
    db.flush()
    _reach_sites(db, company, before)
    return company


def _reach_sites(db: DB, company: Company,
                 before: tuple[CompanyStatus, int | None, int | None]) -> None:
    """A change of standing or caps reaches the live sessions at once: a
    company newly suspended or closed is disconnected, new caps go out by CoA."""
    status, up, down = before
    if company.status != status and company.status in (CompanyStatus.suspended,
                                                        CompanyStatus.closed):
        reach.after_change(db, company_ids=[company.id],
                           reason=f"company {company.status.value}")
    elif (company.bandwidth_up, company.bandwidth_down) != (up, down):
        reach.push_bandwidth(db, company.id, company.bandwidth_up, company.bandwidth_down)


def remove_company(db: DB, name: str) -> None:
    company = get_company(db, name)
    people = _count(db, Person.company_id, company.id)
    if people:
        raise UserError(f"company {name!r} still has {people} person(s): remove them first, "
                        "or set --status closed")
    db.delete(company)
    db.flush()


# -- people -----------------------------------------------------------------

@dataclass
class PersonChanges:
    login: str | None = None
    company: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str | None = None
    chap: bool | None = None
    active: bool | None = None
    language: str | None = None


LANGUAGES = ("fr", "nl", "en")


# A generated password: 16 letters and digits without look-alikes (no 0/O,
# 1/l/I), about 90 bits, easy to read out over the phone.
_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_password(length: int = 16) -> str:
    """A random password for a person (a reset, an import without one)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def clean_language(value: str) -> str:
    if value not in LANGUAGES:
        raise UserError(f"bad language {value!r}: {', '.join(LANGUAGES)}")
    return value


def _login_free(db: DB, typed: str, login: str, person: Person | None = None) -> None:
    # ``login`` is in its normal form: two spellings of one address are one
    # person's (lower() also finds a login stored before the normal form).
    other = db.scalar(select(Person).where(func.lower(Person.login) == login.lower()))
    if other is not None and other is not person:
        same = "" if other.login == typed.strip() else f" (as {other.login!r})"
        raise UserError(f"login {typed.strip()!r} already exists{same}")


def add_person(db: DB, login: str, company: str, password: str, *, name: str = "",
               chap: bool = False, active: bool = True, language: str = "fr") -> Person:
    typed, login = login, clean_login(login)
    _login_free(db, typed, login)
    the_company = get_company(db, company)
    password = clean_password(password)
    person = Person(login=login, company=the_company,
                    name=clean_name(name, "a name", 128) if name else "",
                    password_hash=passwords.hash_password(password),
                    chap_secret=passwords.seal_chap_secret(password) if chap else None,
                    active=active, language=clean_language(language))
    db.add(person)
    db.flush()
    return person


def list_people(db: DB, company: str | None = None) -> list[tuple[Person, int]]:
    """People (of one company, or all) with their balance in seconds."""
    query = (select(Person, ledger.balance_of(Person.id)).join(Company)
             .order_by(Company.name, Person.login))
    if company is not None:
        query = query.where(Person.company_id == get_company(db, company).id)
    return [(person, int(left or 0)) for person, left in db.execute(query).all()]


def set_person(db: DB, login: str, changes: PersonChanges) -> Person:
    person = get_person(db, login)
    if changes.login is not None:
        new_login = clean_login(changes.login)
        _login_free(db, changes.login, new_login, person)
        person.login = new_login
    if changes.company is not None:
        person.company = get_company(db, changes.company)
    if changes.name is not None:
        person.name = clean_name(changes.name, "a name", 128) if changes.name else ""
    if changes.password is not None:
        password = clean_password(changes.password)
        person.password_hash = passwords.hash_password(password)
        # A sealed CHAP secret must follow the password, or CHAP would keep the old one.
        keep_chap = changes.chap if changes.chap is not None else person.chap_secret is not None
        person.chap_secret = passwords.seal_chap_secret(password) if keep_chap else None
    elif changes.chap is True and person.chap_secret is None:
        raise UserError("CHAP needs the password in a reversible form: give --password "
                        "with --chap")
    elif changes.chap is False:
        person.chap_secret = None
    if changes.active is not None:
        if person.active and not changes.active:
            reach.after_change(db, person_ids=[person.id], reason="person deactivated")
        person.active = changes.active
    if changes.language is not None:
        person.language = clean_language(changes.language)
    db.flush()
    return person


def remove_person(db: DB, login: str) -> None:
    """Remove a person and their ledger; sessions and log lines stay, unlinked."""
    person = get_person(db, login)
    reach.after_change(db, person_ids=[person.id], reason="person removed")
    for entry in db.scalars(select(CreditEntry).where(CreditEntry.person_id == person.id)):
        db.delete(entry)
    for key in db.scalars(select(WifiKey).where(WifiKey.person_id == person.id)):
        db.delete(key)
    keys.forget(db, person.id)
    db.delete(person)
    db.flush()


# -- credit -----------------------------------------------------------------

def add_credit(db: DB, login: str, minutes: int, now: datetime, note: str = "") -> CreditEntry:
    person = get_person(db, login)
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise UserError(f"bad number of minutes {minutes!r}: a whole number such as 600")
    if minutes <= 0:
        raise UserError(f"bad number of minutes {minutes}: a top-up adds 1 minute or more")
    if minutes > MAX_CREDIT_MINUTES:
        raise UserError(f"bad number of minutes {_short(minutes)}: more than {MAX_CREDIT_MINUTES} "
                        "(19 years) is a typing error")
    entry = ledger.top_up(db, person.id, minutes * 60, now,
                          note=clean_name(note, "a note", 256) if note else "")
    db.flush()
    return entry


@dataclass
class Statement:
    person: Person
    balance: int  # seconds
    entries: list[CreditEntry]


def show_credit(db: DB, login: str) -> Statement:
    person = get_person(db, login)
    entries = list(db.scalars(select(CreditEntry).where(CreditEntry.person_id == person.id)
                              .order_by(CreditEntry.created, CreditEntry.id)))
    return Statement(person, ledger.balance(db, person.id), entries)


# -- operators of the console ------------------------------------------------

# Operators sign in to a web console, not over RADIUS: no 128-octet limit, and a
# floor, since the console can cut every session of the network.
MIN_OPERATOR_PASSWORD = 12
MAX_OPERATOR_PASSWORD = 1024
ROLE_WORDS = {"network-ops": OperatorRole.network_ops, "ops": OperatorRole.network_ops,
              "site-manager": OperatorRole.site_manager,
              "company-manager": OperatorRole.company_manager}


def role_word(role: OperatorRole) -> str:
    """The role as the command line spells it."""
    return role.value.replace("_", "-")


def parse_role(value: str) -> OperatorRole:
    word = value.strip().lower().replace("_", "-")
    if word not in ROLE_WORDS:
        raise UserError(f"bad role {value!r}: network-ops, site-manager or company-manager")
    return ROLE_WORDS[word]


def clean_operator_password(value: str) -> str:
    if len(value) < MIN_OPERATOR_PASSWORD:
        raise UserError(f"an operator's password has at least {MIN_OPERATOR_PASSWORD} "
                        "characters")
    if len(value) > MAX_OPERATOR_PASSWORD:
        raise UserError(f"an operator's password has at most {MAX_OPERATOR_PASSWORD} "
                        "characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UserError("the password contains control characters")
    return value


def get_operator(db: DB, login: str) -> Operator:
    key = logins.lookup_key(login) or login.strip()
    found = db.scalar(select(Operator).where(func.lower(Operator.login) == key.lower()))
    if found is None:
        raise UserError(f"unknown operator {login!r} (see: passerelle admin operator list)")
    return found


def _operator_login_free(db: DB, login: str, operator: Operator | None = None) -> None:
    other = db.scalar(select(Operator).where(func.lower(Operator.login) == login.lower()))
    if other is not None and other is not operator:
        raise UserError(f"operator {login!r} already exists")


def _scope(db: DB, role: OperatorRole, company: str | None,
           sites: list[str] | None) -> tuple[Company | None, list[Site]]:
    """The company and sites a role needs, checked: each role has exactly its own."""
    the_sites = [get_site(db, name) for name in dict.fromkeys(sites or [])]
    match role:
        case OperatorRole.network_ops:
            if company is not None or the_sites:
                raise UserError("network ops see everything: give no --company and no --site")
            return None, []
        case OperatorRole.site_manager:
            if company is not None:
                raise UserError("a site manager has sites, not a company: drop --company")
            if not the_sites:
                raise UserError("a site manager needs at least one --site")
            return None, the_sites
        case OperatorRole.company_manager:
            if the_sites:
                raise UserError("a company manager has a company, not sites: drop --site")
            if company is None:
                raise UserError("a company manager needs their --company")
            return get_company(db, company), []
    assert_never(role)


def add_operator(db: DB, login: str, password: str, role: str, now: datetime, *,
                 name: str = "", company: str | None = None,
                 sites: list[str] | None = None) -> Operator:
    login = clean_login(login)
    _operator_login_free(db, login)
    the_role = parse_role(role)
    the_company, the_sites = _scope(db, the_role, company, sites)
    operator = Operator(login=login, name=clean_name(name, "a name", 128) if name else "",
                        password_hash=passwords.hash_password(clean_operator_password(password)),
                        role=the_role, company=the_company, sites=the_sites, active=True,
                        epoch=0, created=now)
    db.add(operator)
    db.flush()
    return operator


def list_operators(db: DB) -> list[Operator]:
    return list(db.scalars(select(Operator).order_by(Operator.role, Operator.login)))


@dataclass
class OperatorChanges:
    """What `operator set` changes; None leaves a field as it is. ``sites``
    replaces the site manager's sites."""

    login: str | None = None
    name: str | None = None
    password: str | None = field(default=None, repr=False)
    role: str | None = None
    company: str | None = None
    sites: list[str] | None = None
    active: bool | None = None


def set_operator(db: DB, login: str, changes: OperatorChanges) -> Operator:
    """Change an operator; a new password, role, scope or a disabled account
    ends the console sessions they have open (``epoch``)."""
    operator = get_operator(db, login)
    ends_sessions = False
    if changes.login is not None:
        new_login = clean_login(changes.login)
        _operator_login_free(db, new_login, operator)
        operator.login = new_login
    if changes.name is not None:
        operator.name = clean_name(changes.name, "a name", 128) if changes.name else ""
    if changes.password is not None:
        operator.password_hash = passwords.hash_password(
            clean_operator_password(changes.password))
        ends_sessions = True
    if changes.role is not None or changes.company is not None or changes.sites is not None:
        role = parse_role(changes.role) if changes.role is not None else operator.role
        keep = role == operator.role
        company = changes.company if changes.company is not None else (
            operator.company.name if keep and operator.company else None)
        sites = changes.sites if changes.sites is not None else (
            [s.name for s in operator.sites] if keep else None)
        the_company, the_sites = _scope(db, role, company, sites)
        operator.role, operator.company, operator.sites = role, the_company, the_sites
        ends_sessions = True
    if changes.active is not None:
        ends_sessions = ends_sessions or not changes.active
        operator.active = changes.active
    if ends_sessions:
        operator.epoch += 1
    db.flush()
    return operator


def remove_operator(db: DB, login: str) -> None:
    db.delete(get_operator(db, login))
    db.flush()


# -- personal Wi-Fi keys (the rules: keys.py) ----------------------------------

def key_history(db: DB, login: str) -> tuple[Person, list[PersonKey]]:
    """The person and their keys, newest first (the first is current unless
    revoked). Callers show serials and dates, never a passphrase: a key is
    shown to its owner only (the portal)."""
    person = get_person(db, login)
    return person, list(db.scalars(select(PersonKey).where(PersonKey.person_id == person.id)
                                   .order_by(PersonKey.serial.desc())))


def rotate_key(db: DB, login: str, now: datetime) -> PersonKey:
    return keys.rotate(db, get_person(db, login).id, now)


def revoke_key(db: DB, login: str, now: datetime) -> PersonKey:
    person = get_person(db, login)
    revoked = keys.revoke(db, person.id, now)
    if revoked is None:
        raise UserError(f"{person.login} has no key in force (already revoked, or never "
                        "checked in)")
    return revoked


def set_private_ssid(db: DB, network: str, ssid: str) -> int:
    """The network's private SSID; every key's PMK follows (keys.py)."""
    return keys.set_private_ssid(db, get_network(db, network), ssid.strip())
