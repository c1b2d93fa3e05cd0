"""`passerelle radius serve` and `passerelle radius disconnect|coa`."""

from __future__ import annotations

import click
from sqlalchemy import or_, select

from passerelle import hostport, systemd
from passerelle.errors import UserError

from . import dae, db
from .handler import HandlerSettings
from .models import Gateway, Radacct
from .policy import Settings
from .server import ServerConfig, serve

DB_OPTION = click.option("--db", "db_url", envvar="PASSERELLE_DB", default=None,
                         help="Database URL (default: PASSERELLE_DB or the embedded SQLite).")


@click.group()
def radius() -> None:
    """The central RADIUS server and its Dynamic Authorization client."""


@radius.command("serve")
@DB_OPTION
@click.option("--listen", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--auth-port", default=1812, show_default=True, type=click.IntRange(0, 65535))
@click.option("--acct-port", default=1813, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the ports (SO_REUSEPORT).")
@click.option("--idle-timeout", default=900, show_default=True, type=click.IntRange(1),
              help="Idle-Timeout sent in every Access-Accept (seconds).")
@click.option("--interim-interval", default=300, show_default=True, type=click.IntRange(60),
              help="Acct-Interim-Interval sent in every Access-Accept (seconds, >= 60).")
@click.option("--db-threads", default=2, show_default=True, type=click.IntRange(1, 16),
              help="Batches each worker keeps at the database at once.")
@click.option("--radsec-port", type=click.IntRange(0, 65535), default=None,
              help="Also answer RADIUS over TLS (RFC 6614) on this TCP port (2083 is "
                   "the standard one); boxes are known by their enrolment certificate.")
@click.option("--radsec-name", "radsec_names", multiple=True,
              help="A name or address boxes reach this server by, for its TLS certificate "
                   "(repeatable; default the --listen address).")
@click.option("--metrics", "metrics_listen", envvar="PASSERELLE_METRICS", default=None,
              metavar="ADDRESS:PORT", callback=lambda _c, _p, v: _listen(v),
              help="Serve Prometheus metrics on this address (e.g. 127.0.0.1:9465; "
                   "default: PASSERELLE_METRICS, or none).")
def serve_command(db_url: str | None, listen: str, auth_port: int, acct_port: int,
                  workers: int, idle_timeout: int, interim_interval: int,
                  db_threads: int, radsec_port: int | None,
                  radsec_names: tuple[str, ...],
                  metrics_listen: tuple[str, int] | None) -> None:
    """Answer RADIUS authentication and accounting."""
    url = db_url or db.default_url()
    settings = HandlerSettings(policy=Settings(idle_timeout=idle_timeout,
                                               interim_interval=interim_interval))
    watchdog = systemd.Watchdog()  # alive: a dead worker ends the server itself
    watchdog.start()
    serve(ServerConfig(db_url=url, listen=listen, auth_port=auth_port, acct_port=acct_port,
                       workers=workers, settings=settings, db_threads=db_threads,
                       radsec_port=radsec_port, radsec_names=radsec_names,
                       metrics_listen=metrics_listen))
    watchdog.stop()


def _find_session(db_url: str | None, ref: str) -> tuple[Radacct, Gateway]:
    engine = db.make_engine(db_url or db.default_url())
    try:
        with db.make_sessionmaker(engine)() as s:
            query = select(Radacct, Gateway).join(Gateway, Radacct.gateway_id == Gateway.id)
            cond = or_(Radacct.acctsessionid == ref, Radacct.acctuniqueid == ref)
            if ref.isdigit():
                cond = or_(cond, Radacct.radacctid == int(ref))
            rows = s.execute(query.where(cond).order_by(Radacct.acctstoptime.is_(None).desc(),
                                                        Radacct.radacctid.desc())).all()
    finally:
        engine.dispose()
    if not rows:
        raise UserError(f"no session {ref!r} (give its Acct-Session-Id, acctuniqueid or id)")
    session, gateway = rows[0]
    if session.acctstoptime is not None:
        click.echo(f"note: session {ref} is already stopped; asking the gateway anyway", err=True)
    return session, gateway


def _selector(session: Radacct, gateway: Gateway) -> dict[str, object]:
    attrs: dict[str, object] = {"Acct-Session-Id": session.acctsessionid,
                                "NAS-Identifier": gateway.identifier}
    if session.username:
        attrs["User-Name"] = session.username
    if session.callingstationid:
        attrs["Calling-Station-Id"] = session.callingstationid
    if session.framedipaddress:
        attrs["Framed-IP-Address"] = session.framedipaddress
    return attrs


def _report(result: dae.Result) -> None:
    click.echo(str(result))
    if not result.acked:
        raise SystemExit(1)


@radius.command("disconnect")
@DB_OPTION
@click.argument("session")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds per try.")
def disconnect_command(db_url: str | None, session: str, timeout: float) -> None:
    """Cut SESSION (Acct-Session-Id, acctuniqueid or id) with a Disconnect-Request."""
    row, gateway = _find_session(db_url, session)
    target = dae.Target(gateway.ip_address, gateway.coa_port, gateway.secret.encode())
    _report(dae.disconnect(target, _selector(row, gateway), timeout=timeout))


@radius.command("coa")
@DB_OPTION
@click.argument("session")
@click.option("--session-timeout", type=click.IntRange(1), help="New Session-Timeout (s).")
@click.option("--bandwidth-up", type=click.IntRange(1), help="WISPr-Bandwidth-Max-Up (bit/s).")
@click.option("--bandwidth-down", type=click.IntRange(1),
              help="WISPr-Bandwidth-Max-Down (bit/s).")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds per try.")
def coa_command(db_url: str | None, session: str, session_timeout: int | None,
                bandwidth_up: int | None, bandwidth_down: int | None, timeout: float) -> None:
    """Change SESSION with a CoA-Request (new time limit or bandwidth)."""
    changes: dict[str, object] = {}
    if session_timeout:
        changes["Session-Timeout"] = session_timeout
    if bandwidth_up:
        changes["WISPr-Bandwidth-Max-Up"] = bandwidth_up
    if bandwidth_down:
        changes["WISPr-Bandwidth-Max-Down"] = bandwidth_down
    if not changes:
        raise UserError("nothing to change: give --session-timeout or --bandwidth-up/down")
    row, gateway = _find_session(db_url, session)
    target = dae.Target(gateway.ip_address, gateway.coa_port, gateway.secret.encode())
    _report(dae.change(target, {**_selector(row, gateway), **changes}, timeout=timeout))


def _listen(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    try:
        return hostport.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from None
