"""`passerelle gateway ...`: run the box, check its configuration, ask it."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from passerelle.errors import UserError

from .config import Config, load
from .control import ControlClient, ControlError

CONFIG = click.option("--config", "config_path", type=click.Path(path_type=Path),
                      default=Path("/etc/passerelle/gateway.toml"), show_default=True,
                      help="The box's TOML configuration.")


def _load(path: Path) -> Config:
    config = load(path)
    for finding in config.findings:
        click.echo(f"detected: {finding}", err=True)
    return config


@click.group()
def gateway() -> None:
    """The site box: data plane, DHCP/DNS, sessions, RADIUS client."""


@gateway.command("check-config")
@CONFIG
def check_config(config_path: Path) -> None:
    """Read the configuration, detect what is not set, and say what the box
    would do; exit 2 naming the key when something is wrong."""
    c = _load(config_path)
    click.echo(f"identifier {c.identifier}, NAS-IP-Address {c.nas_ip}")
    click.echo(f"LAN {c.lan_if} {c.lan_address}, DHCP {c.dhcp_start}-{c.dhcp_end}")
    for v in c.vlans:
        click.echo(f"VLAN {v.id} on {v.interface} {v.address}, DHCP {v.dhcp_start}-"
                   f"{v.dhcp_end}")
    click.echo(f"WAN {c.wan_if}, masquerade {'on' if c.masquerade else 'off'}")
    click.echo(f"portal http {c.portal_http_port}, RFC 8908 API {c.portal_api_url}")
    click.echo(f"private SSID: the key is the identity ({c.key_is_identity.value}), joining "
               f"{'checks in' if c.join_checks_in else 'does not check in'}")
    if c.metrics_listen is not None:
        click.echo(f"metrics on {c.metrics_listen[0]}:{c.metrics_listen[1]}")
    for s in c.servers:
        relaxed = "" if s.require_message_authenticator else " (Message-Authenticator relaxed)"
        click.echo(f"RADIUS server {s.host} auth {s.auth_port} acct {s.acct_port}{relaxed}")
    click.echo(f"RFC 5176 on {c.dae_listen}:{c.dae_port} from {', '.join(c.dae_clients)}")
    click.echo(f"state in {c.state_dir}, control socket {c.control_socket}")
    click.echo("configuration OK")


@gateway.command("run")
@CONFIG
def run(config_path: Path) -> None:
    """Run the box until SIGTERM; sessions stay enforced by the kernel
    while it is stopped and are restored when it starts again."""
    from .service import Box

    Box(_load(config_path)).run_forever()


def _client(config_path: Path, socket_path: Path | None) -> ControlClient:
    if socket_path is None:
        socket_path = load(config_path).control_socket
    return ControlClient(socket_path)


SOCKET = click.option("--socket", "socket_path", type=click.Path(path_type=Path), default=None,
                      help="The control socket (default: from the configuration).")


def _ask(client: ControlClient, method: str, *args: Any) -> Any:
    try:
        return getattr(client, method)(*args)
    except ControlError as exc:
        raise UserError(f"{exc.code}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot reach the gateway daemon at {client.path}: {exc}") from None


@gateway.command("status")
@CONFIG
@SOCKET
def status(config_path: Path, socket_path: Path | None) -> None:
    """The daemon's state: sessions and accounting waiting in the spool."""
    click.echo(json.dumps(_ask(_client(config_path, socket_path), "status"), indent=2))


@gateway.command("sessions")
@CONFIG
@SOCKET
def sessions(config_path: Path, socket_path: Path | None) -> None:
    """Every open session."""
    for s in _ask(_client(config_path, socket_path), "sessions"):
        left = "-" if s["seconds_left"] is None else f"{s['seconds_left']}s"
        click.echo(f"{s['session_id']}  {s['ip']:15}  {s['mac']}  {s['login']:30}  "
                   f"used {s['seconds_used']}s  left {left}  "
                   f"up {s['bytes_up']}  down {s['bytes_down']}")


@gateway.command("check-in")
@CONFIG
@SOCKET
@click.argument("ip")
@click.argument("login")
@click.option("--password-file", type=click.File("r"), default=None,
              help="Read the password from a file ('-' for stdin) instead of a prompt.")
@click.option("--chap", is_flag=True, help="Use CHAP instead of PAP.")
def check_in(config_path: Path, socket_path: Path | None, ip: str, login: str,
             password_file: Any, chap: bool) -> None:
    """Check the client at IP in as LOGIN (what the portal does)."""
    if password_file is not None:
        password = password_file.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {login}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    result = _ask(_client(config_path, socket_path), "check_in", ip, login, password, chap)
    click.echo(json.dumps(result, indent=2))


@gateway.command("check-out")
@CONFIG
@SOCKET
@click.argument("ip")
def check_out(config_path: Path, socket_path: Path | None, ip: str) -> None:
    """End the session of the client at IP (User-Request)."""
    result = _ask(_client(config_path, socket_path), "check_out", ip)
    click.echo(f"session {result['ended']} ended")


@gateway.command("enroll")
@click.option("--code", required=True, help="The one-time code ops gave you.")
@click.option("--centre", required=True, help="The centre's address, https://...")
@click.option("--etc", "etc", type=click.Path(path_type=Path), default=Path("/etc/passerelle"),
              show_default=True, help="Where the box's configuration goes.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Trust this CA for the centre's HTTPS certificate.")
@click.option("--force", is_flag=True, help="Enrol again a box already enrolled.")
@click.option("--no-start", is_flag=True, help="Do not start the services afterwards.")
def enroll(code: str, centre: str, etc: Path, ca_file: Path | None, force: bool,
           no_start: bool) -> None:
    """Fetch this box's identity, secret and certificate with a one-time code."""
    from .enrol import Paths
    from .enrol import enroll as do_enroll

    done = do_enroll(code, centre, Paths(etc), ca_file=ca_file, force=force,
                     start=not no_start)
    click.echo(f"enrolled as {done['identifier']} (site {done['site']}, network "
               f"{done['network']}); configuration in {Paths(etc).config}")


@gateway.command("doctor")
@CONFIG
def doctor(config_path: Path) -> None:
    """Check the box from the cables to the centre: one line each, OK or
    what to do; exit 1 if anything is wrong."""
    from . import doctor as d

    try:
        config = load(config_path)
    except UserError as exc:
        click.echo(f"FAIL configuration: {exc}")
        sys.exit(1)
    lines, status = d.report(d.verdicts(config, d.look(config), d.now_utc()))
    for line in lines:
        click.echo(line)
    sys.exit(status)


def register(root: click.Group) -> None:
    root.add_command(gateway)
