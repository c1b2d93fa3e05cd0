"""The central data model.

Sessions use the column names of FreeRADIUS's ``radacct`` table so that
people who know FreeRADIUS's SQL schema feel at home. Every timestamp is a
naive UTC datetime (SQLite has no time zones; PostgreSQL columns are
``timestamp without time zone`` holding UTC).

The credit ledger (credit_entry) is the record of every top-up and charge;
each person's balance is its sum, kept up to date by the database in
credit_balance (see CreditBalance), never written by our code.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from passerelle.errors import UserError

from . import passwords

# Named constraints keep Alembic migrations stable across backends.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Sealed(TypeDecorator[str]):
    """Text kept sealed with the server key in the database and clear in
    Python: what a reader of the database or of a backup must not get, and
    the code must read back (see passwords.seal)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else passwords.seal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        clear = passwords.open_sealed(str(value))
        if clear is None:
            raise UserError(f"a sealed secret in the database does not open with the server "
                            f"key {passwords.key_path()}: is it the key file it was sealed "
                            "with (PASSERELLE_KEY_FILE)?")
        return clear


class CompanyStatus(str, enum.Enum):
    active = "active"
    suspended = "suspended"
    closed = "closed"


class PaymentStatus(str, enum.Enum):
    ok = "ok"
    overdue = "overdue"


class OperatorRole(str, enum.Enum):
    """What an operator of the ops console may see and do."""

    network_ops = "network_ops"  # everything
    site_manager = "site_manager"  # their sites' sessions and boxes
    company_manager = "company_manager"  # their company's people, credit and sessions


class CreditKind(str, enum.Enum):
    topup = "topup"
    charge = "charge"
    adjustment = "adjustment"


DEFAULT_PRIVATE_SSID = "Passerelle-Private"


class Network(Base):
    """A partner network of sites."""

    __tablename__ = "network"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # The private SSID the personal keys open, the same at every site (the
    # PMKs are derived for it).
    private_ssid: Mapped[str] = mapped_column(String(32), default=DEFAULT_PRIVATE_SSID,
                                              server_default=DEFAULT_PRIVATE_SSID)
    sites: Mapped[list[Site]] = relationship(back_populates="network")


class Site(Base):
    """A telework site. Opening hours are local times in ``timezone``; a site
    without ``opens``/``closes`` is always open (an unstaffed site)."""

    __tablename__ = "site"
    __table_args__ = (
        CheckConstraint("category BETWEEN 1 AND 3", name="category"),
        CheckConstraint("capacity >= 0", name="capacity"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("network.id"))
    category: Mapped[int] = mapped_column(Integer, default=1)
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    staffed: Mapped[bool] = mapped_column(Boolean, default=True)
    city: Mapped[str] = mapped_column(String(128), default="")
    # "HH:MM" local times; None for both means open around the clock.
    opens: Mapped[str | None] = mapped_column(String(5), default=None)
    closes: Mapped[str | None] = mapped_column(String(5), default=None)
    # ISO weekdays the site opens, "12345" = Monday to Friday.
    open_days: Mapped[str] = mapped_column(String(7), default="1234567")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Brussels")

    network: Mapped[Network] = relationship(back_populates="sites")
    gateways: Mapped[list[Gateway]] = relationship(back_populates="site")


class Gateway(Base):
    """The NAS of a site: the box that sends RADIUS and answers RFC 5176."""

    __tablename__ = "gateway"
    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    # The source address its requests come from (the RADIUS client address).
    ip_address: Mapped[str] = mapped_column(String(45), unique=True)
    # The RADIUS shared secret, sealed at rest (at most 128 characters clear).
    secret: Mapped[str] = mapped_column(Sealed())
    coa_port: Mapped[int] = mapped_column(Integer, default=3799)
    # BlastRADIUS: refuse Access-Requests without Message-Authenticator.
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    # What the box tells in its Status-Server heartbeat (docs/console.md).
    last_status: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    software_version: Mapped[str | None] = mapped_column(String(64), default=None)
    spool_depth: Mapped[int | None] = mapped_column(Integer, default=None)
    last_accounting_on: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_accounting_off: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    site: Mapped[Site] = relationship(back_populates="gateways")


class Company(Base):
    """A member company and its plan (which site categories and services its
    people may use, and optional caps)."""

    __tablename__ = "company"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[CompanyStatus] = mapped_column(
        Enum(CompanyStatus, name="company_status", native_enum=False, length=16),
        default=CompanyStatus.active,
    )
    payment: Mapped[PaymentStatus] = mapped_column(
        Enum(PaymentStatus, name="payment_status", native_enum=False, length=16),
        default=PaymentStatus.ok,
    )
    # Plan: the site categories allowed ("123"), the services (comma list).
    categories: Mapped[str] = mapped_column(String(3), default="123")
    services: Mapped[str] = mapped_column(String(128), default="wifi")
    bandwidth_up: Mapped[int | None] = mapped_column(BigInteger, default=None)  # bit/s
    bandwidth_down: Mapped[int | None] = mapped_column(BigInteger, default=None)  # bit/s
    max_session: Mapped[int | None] = mapped_column(Integer, default=None)  # seconds
    vlan: Mapped[int | None] = mapped_column(Integer, default=None)
    # The partner platform's id for it (the API finds companies by it).
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    # Sessions one person may have open at once (devices); None: no limit.
    max_sessions: Mapped[int | None] = mapped_column(Integer, default=None)

    people: Mapped[list[Person]] = relationship(back_populates="company")


class Person(Base):
    """An employee of a member company, who logs in with ``login``."""

    __tablename__ = "person"
    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(253), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    password_hash: Mapped[str] = mapped_column(String(256))
    # CHAP needs the cleartext password on the server. Only people for whom
    # CHAP is enabled have it, encrypted with the server's key (see secrets.py).
    chap_secret: Mapped[str | None] = mapped_column(Text, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="fr")
    # The partner platform's id for them (the API finds people by it).
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)

    company: Mapped[Company] = relationship(back_populates="people")


class CreditEntry(Base):
    """One line of the credit ledger, in seconds: positive for a top-up,
    negative for a charge. Charges point at the session they pay for."""

    __tablename__ = "credit_entry"
    # (person, seconds): the balance is a sum the index alone answers.
    __table_args__ = (Index("ix_credit_entry_person_seconds", "person_id", "seconds"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    seconds: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[CreditKind] = mapped_column(
        Enum(CreditKind, name="credit_kind", native_enum=False, length=16)
    )
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("radacct.radacctid", ondelete="SET NULL"), default=None
    )
    created: Mapped[datetime] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(String(256), default="")


class CreditBalance(Base):
    """A person's credit left: the sum of their ledger lines, kept by the
    database itself (triggers on credit_entry, migration 0013) in the
    transaction that writes or deletes the lines. Reading it costs one row
    however long the ledger grows; summing the ledger cost a row per line
    on every Access-Request and every accounting batch. A person without
    ledger lines has no row: their balance is 0. A person has a row per
    ``shard`` (the database connection that wrote: two workers charging the
    same person do not queue on one row); the balance is their sum."""

    __tablename__ = "credit_balance"
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"),
                                           primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)


class WifiKey(Base):
    """A per-check-in Wi-Fi key of before the personal keys (PersonKey):
    history only, no longer issued; migration 0006 blanked the passphrases."""

    __tablename__ = "wifi_key"
    __table_args__ = (Index("ix_wifi_key_person", "person_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    passphrase: Mapped[str] = mapped_column(String(64))
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateway.id"), default=None)
    # The Class of the Access-Accept that issued it, to find it at accounting.
    class_: Mapped[str | None] = mapped_column("class", String(64), default=None, index=True)
    issued: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class Radacct(Base):
    """An accounting session; the columns of FreeRADIUS's ``radacct``."""

    __tablename__ = "radacct"
    __table_args__ = (
        Index("ix_radacct_starttime", "acctstarttime"),
        # A gateway's open sessions (closed at its Accounting-On/Off).
        Index("ix_radacct_nas_open", "nasipaddress",
              postgresql_where=text("acctstoptime IS NULL"),
              sqlite_where=text("acctstoptime IS NULL")),
        # The open sessions only (a few thousand among millions of rows): the
        # live view's order and a person's open sessions (the session limit).
        Index("ix_radacct_live", "acctstarttime", "radacctid",
              postgresql_where=text("acctstoptime IS NULL"),
              sqlite_where=text("acctstoptime IS NULL")),
        Index("ix_radacct_person_live", "person_id",
              postgresql_where=text("acctstoptime IS NULL"),
              sqlite_where=text("acctstoptime IS NULL")),
    )
    radacctid: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                           primary_key=True)
    acctsessionid: Mapped[str] = mapped_column(String(64))
    acctuniqueid: Mapped[str] = mapped_column(String(32), unique=True)
    username: Mapped[str] = mapped_column(String(253), default="")
    realm: Mapped[str] = mapped_column(String(64), default="")
    nasipaddress: Mapped[str] = mapped_column(String(45))
    nasidentifier: Mapped[str] = mapped_column(String(64), default="")
    nasportid: Mapped[str] = mapped_column(String(32), default="")
    nasporttype: Mapped[str] = mapped_column(String(32), default="")
    acctstarttime: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    acctupdatetime: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    acctstoptime: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    acctinterval: Mapped[int | None] = mapped_column(Integer, default=None)
    acctsessiontime: Mapped[int] = mapped_column(BigInteger, default=0)
    acctauthentic: Mapped[str] = mapped_column(String(32), default="")
    connectinfo_start: Mapped[str] = mapped_column(String(128), default="")
    connectinfo_stop: Mapped[str] = mapped_column(String(128), default="")
    acctinputoctets: Mapped[int] = mapped_column(BigInteger, default=0)
    acctoutputoctets: Mapped[int] = mapped_column(BigInteger, default=0)
    calledstationid: Mapped[str] = mapped_column(String(64), default="")
    callingstationid: Mapped[str] = mapped_column(String(64), default="")
    acctterminatecause: Mapped[str] = mapped_column(String(32), default="")
    servicetype: Mapped[str] = mapped_column(String(32), default="")
    framedprotocol: Mapped[str] = mapped_column(String(32), default="")
    framedipaddress: Mapped[str] = mapped_column(String(45), default="")
    framedipv6address: Mapped[str] = mapped_column(String(45), default="")
    class_: Mapped[str] = mapped_column("class", String(64), default="")
    # Ours: who and where, resolved once at Start.
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), default=None
    )
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateway.id"), default=None)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), default=None)
    # Seconds of this session already charged to the ledger.
    charged: Mapped[int] = mapped_column(BigInteger, default=0)


class AuthLog(Base):
    """Every authentication decision, like FreeRADIUS's ``radpostauth``."""

    __tablename__ = "radpostauth"
    __table_args__ = (Index("ix_radpostauth_authdate", "authdate"),
                      Index("ix_radpostauth_class", "class"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    username: Mapped[str] = mapped_column(String(253))
    reply: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32), default="")
    # An Accept's Session-Timeout (seconds), so the console tells the time left.
    sessiontimeout: Mapped[int | None] = mapped_column(BigInteger, default=None)
    nasipaddress: Mapped[str] = mapped_column(String(45), default="")
    nasidentifier: Mapped[str] = mapped_column(String(64), default="")
    callingstationid: Mapped[str] = mapped_column(String(64), default="")
    class_: Mapped[str] = mapped_column("class", String(64), default="")
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), default=None
    )
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), default=None)
    authdate: Mapped[datetime] = mapped_column(DateTime)


# Which sites a site manager manages.
operator_site = Table(
    "operator_site", Base.metadata,
    Column("operator_id", ForeignKey("operator.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("site.id", ondelete="CASCADE"), primary_key=True),
)


class Operator(Base):
    """Someone who signs in to the ops console. A company manager has a
    company, a site manager has sites (``operator_site``), network ops have
    neither. ``epoch`` grows when the password, role or scope changes, the
    account is disabled or the operator signs out: console sessions signed in
    before it end."""

    __tablename__ = "operator"
    __table_args__ = (
        CheckConstraint("(role = 'company_manager' AND company_id IS NOT NULL) OR "
                        "(role <> 'company_manager' AND company_id IS NULL)", name="company"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(253), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[OperatorRole] = mapped_column(
        Enum(OperatorRole, name="operator_role", native_enum=False, length=16))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime)
    last_sign_in: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    company: Mapped[Company | None] = relationship()
    sites: Mapped[list[Site]] = relationship(secondary=operator_site, order_by=Site.name)


class AuditEntry(Base):
    """Who did what, and when: one line per action an operator takes (a
    Disconnect from the console, ...). ``actor`` keeps the login as it was,
    so the line outlives the operator's account."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_subject", "subject_kind", "subject_id"),
                      Index("ix_audit_entry_at", "at"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("operator.id", ondelete="SET NULL"), default=None)
    actor: Mapped[str] = mapped_column(String(253))
    action: Mapped[str] = mapped_column(String(32))
    # What it was done to: ("session", radacct id), ("person", id), ...
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    detail: Mapped[str] = mapped_column(String(512), default="")


class EnrolmentCode(Base):
    """A one-time code with which a new box fetches its identity (docs/enrolment.md)."""

    __tablename__ = "enrolment_code"
    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id", ondelete="CASCADE"),
                                            index=True)
    # SHA-256 of the code: the code itself is shown once and never stored.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    expires: Mapped[datetime] = mapped_column(DateTime)
    used: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    used_from: Mapped[str] = mapped_column(String(45), default="")


class GatewayCertificate(Base):
    """A TLS client certificate the centre's CA issued to a box."""

    __tablename__ = "gateway_certificate"
    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id", ondelete="CASCADE"),
                                            index=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)  # hex
    issued: Mapped[datetime] = mapped_column(DateTime)
    not_after: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class CertificateAuthority(Base):
    """The centre's small CA; its key sealed with the server key, so every
    central node that shares the key file signs with the same CA."""

    __tablename__ = "certificate_authority"
    id: Mapped[int] = mapped_column(primary_key=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    key_pem: Mapped[str] = mapped_column(Sealed())
    created: Mapped[datetime] = mapped_column(DateTime)


class PersonKey(Base):
    """A person's personal Wi-Fi key, the same at every site. Rotating it
    revokes the row and adds the next ``serial``; one row of a person at most
    is current (``revoked`` None). The passphrase and its PMK for ``ssid`` are
    sealed with the server key: the database alone opens no network. The row
    id orders the keys for the boxes' sync (radius/keys.py)."""

    __tablename__ = "person_key"
    # One current key per person: two first check-ins racing issue one key.
    __table_args__ = (Index("ix_person_key_current", "person_id", unique=True,
                            sqlite_where=text("revoked IS NULL"),
                            postgresql_where=text("revoked IS NULL")),)
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    serial: Mapped[int] = mapped_column(Integer)
    passphrase: Mapped[str] = mapped_column(Sealed())
    ssid: Mapped[str] = mapped_column(String(32))
    pmk: Mapped[str] = mapped_column(Sealed())  # 64 hex digits, for ``ssid``
    created: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[datetime | None] = mapped_column(DateTime, default=None)



# -- the partner API (docs/api.md) --------------------------------------------

class ApiRole(str, enum.Enum):
    """Who a bearer token of the partner API speaks for."""

    partner = "partner"  # the partner platform: provisions the whole network
    company = "company"  # one member company: reads its own data only


class ApiToken(Base):
    """A bearer token of the partner API. Only the SHA-256 of the token is
    kept: it is shown once, when made."""

    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint("(role = 'company' AND company_id IS NOT NULL) OR "
                        "(role <> 'company' AND company_id IS NULL)", name="company"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[ApiRole] = mapped_column(
        Enum(ApiRole, name="api_role", native_enum=False, length=16))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), default=None)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    last_used: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    revoked: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    company: Mapped[Company | None] = relationship()


class IdempotentCall(Base):
    """The first answer to a call made with an Idempotency-Key. The unique
    (token, key) pair is what makes a retried top-up count once, even when
    two copies arrive at the same time."""

    __tablename__ = "api_idempotent_call"
    __table_args__ = (UniqueConstraint("token_id", "key", name="uq_api_idempotent_call_key"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_token.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    # SHA-256 of method, path and body: the same key with another call is a 409.
    request_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime)


class Webhook(Base):
    """Where the partner platform wants events POSTed, signed with ``secret``
    (HMAC-SHA256). With a company, only that company's events."""

    __tablename__ = "webhook"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(Sealed())
    # Comma list of event types (session.start, session.stop, credit.low).
    events: Mapped[str] = mapped_column(String(256))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(DateTime)

    company: Mapped[Company | None] = relationship()


class WebhookDelivery(Base):
    """One event for one webhook, until it is delivered or given up. The
    unique (webhook, event key) pair makes each event queued once."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_key", name="uq_webhook_delivery_event"),
        Index("ix_webhook_delivery_due", "done", "next_attempt"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(DateTime)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    # delivered | gave-up, once done.
    outcome: Mapped[str] = mapped_column(String(16), default="")


class WebhookAttempt(Base):
    """Every POST of a delivery, with what came back."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_delivery", "delivery_id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str] = mapped_column(String(256), default="")
    milliseconds: Mapped[int] = mapped_column(Integer, default=0)


class WebhookCursor(Base):
    """How far the webhook poller has read the accounting tables."""

    __tablename__ = "webhook_cursor"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class AccountingQuarantine(Base):
    """An accounting record the centre answered but could not store (a value
    beyond its column's range, a row the database refused): set aside here
    with what was sent, so ops can see it and the box's spool moves on."""

    __tablename__ = "accounting_quarantine"
    __table_args__ = (Index("ix_accounting_quarantine_received", "received"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    received: Mapped[datetime] = mapped_column(DateTime)
    gateway_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateway.id", ondelete="SET NULL"), default=None)
    nasidentifier: Mapped[str] = mapped_column(String(64), default="")
    nasipaddress: Mapped[str] = mapped_column(String(45), default="")
    status: Mapped[str] = mapped_column(String(32), default="")
    acctsessionid: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(512))
    # The decoded attributes as JSON, and the datagram itself in hex.
    attributes: Mapped[str] = mapped_column(Text, default="")
    datagram: Mapped[str] = mapped_column(Text, default="")
class DaeState(str, enum.Enum):
    """Where a queued Disconnect- or CoA-Request stands (radius/outbox.py)."""

    pending = "pending"  # not answered yet: sent again at next_try
    acked = "acked"
    naked = "naked"  # refused; error_cause says why
    gave_up = "gave_up"  # no answer after every try


class DaeRequest(Base):
    """The outbox of RFC 5176 requests to the boxes: each is sent, and sent
    again with back-off, until its box answers or the tries run out."""

    __tablename__ = "dae_request"
    __table_args__ = (Index("ix_dae_request_due", "state", "next_try"),
                      Index("ix_dae_request_session", "radacct_id"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id", ondelete="CASCADE"))
    radacct_id: Mapped[int | None] = mapped_column(
        ForeignKey("radacct.radacctid", ondelete="SET NULL"), default=None)
    kind: Mapped[str] = mapped_column(String(16))  # "disconnect" or "coa"
    attributes: Mapped[str] = mapped_column(Text)  # JSON: attribute name -> value
    state: Mapped[DaeState] = mapped_column(
        Enum(DaeState, name="dae_state", native_enum=False, length=16),
        default=DaeState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try: Mapped[datetime] = mapped_column(DateTime)
    created: Mapped[datetime] = mapped_column(DateTime)
    answered: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    error_cause: Mapped[int | None] = mapped_column(Integer, default=None)
    # Why it was queued ("console", "company-suspended", ...) and by whom.
    reason: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(253), default="")
class CompanyNetwork(Base):
    """The partner network a member company belongs to (at most one): its
    people are that network's members in the partner networks' balance. A
    company without a line belongs to no network."""

    __tablename__ = "company_network"
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id", ondelete="CASCADE"),
                                            primary_key=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("network.id", ondelete="CASCADE"),
                                            index=True)


class ReportDay(Base):
    """The reports' roll-up: what one person (by login) did at one site on
    one local day that is over (reports.DayRow). ``person_id`` and
    ``company_id`` are as they were when the day was rolled up; no foreign
    key, so the history outlives a removed person or company."""

    __tablename__ = "report_day"
    __table_args__ = (Index("ix_report_day_day", "day"),)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"),
                                         primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    login: Mapped[str] = mapped_column(String(253), primary_key=True)
    person_id: Mapped[int | None] = mapped_column(Integer, default=None)
    company_id: Mapped[int | None] = mapped_column(Integer, default=None)
    sessions: Mapped[int] = mapped_column(Integer)
    carried: Mapped[int] = mapped_column(Integer)
    connected: Mapped[int] = mapped_column(Integer)  # seconds, at most a day
    first_in: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    last_out: Mapped[datetime] = mapped_column(DateTime)


class ReportHour(Base):
    """The roll-up of occupancy: the peak of people at once in one local hour."""

    __tablename__ = "report_hour"
    __table_args__ = (Index("ix_report_hour_day", "day"),)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"),
                                         primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    peak: Mapped[int] = mapped_column(Integer)


# The reports find the sessions still open or ended after a given time by
# their stop (reports_sums, the days the roll-up does not hold yet).
Index("ix_radacct_stoptime", Radacct.acctstoptime)


class ReportDone(Base):
    """The local days the roll-up holds (for every site)."""

    __tablename__ = "report_done"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)  # when it was rolled up


__all__ = [
    "AccountingQuarantine",
    "ApiRole",
    "ApiToken",
    "AuditEntry",
    "AuthLog",
    "Base",
    "CertificateAuthority",
    "Company",
    "CompanyNetwork",
    "CompanyStatus",
    "CreditEntry",
    "CreditKind",
    "DaeRequest",
    "DaeState",
    "EnrolmentCode",
    "Gateway",
    "GatewayCertificate",
    "IdempotentCall",
    "Network",
    "Operator",
    "OperatorRole",
    "PaymentStatus",
    "Person",
    "PersonKey",
    "Radacct",
    "ReportDay",
    "ReportDone",
    "ReportHour",
    "ReportMonth",
    "ReportMonthDone",
    "Site",
    "Webhook",
    "WebhookAttempt",
    "WebhookCursor",
    "WebhookDelivery",
    "WifiKey",
]


class ReportMonth(Base):
    """The roll-up's second grain: the day rows of one person (by login, as
    one person and company) at one site summed over one calendar month of
    the site's local days, for the months the roll-up holds whole. A report
    reads its whole months here and its partial days in ``report_day``."""

    __tablename__ = "report_month"
    __table_args__ = (Index("ix_report_month_month", "month"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    month: Mapped[date] = mapped_column(Date)  # its first day
    login: Mapped[str] = mapped_column(String(253))
    person_id: Mapped[int | None] = mapped_column(Integer, default=None)
    company_id: Mapped[int | None] = mapped_column(Integer, default=None)
    sessions: Mapped[int] = mapped_column(Integer)  # with time in the month
    carried: Mapped[int] = mapped_column(Integer)  # of which began before it
    connected: Mapped[int] = mapped_column(Integer)  # seconds
    first_in: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    last_out: Mapped[datetime] = mapped_column(DateTime)
    days: Mapped[int] = mapped_column(Integer)  # bit n: a session on day n + 1


class ReportMonthDone(Base):
    """The calendar months ``report_month`` holds."""

    __tablename__ = "report_month_done"
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)


# Working time reads a person's days in order (its first rows of a year).
Index("ix_report_day_login_day", ReportDay.login, ReportDay.day)
