"""`passerelle portal run`: the captive portal of a box."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from passerelle.gateway.config import Config


def _addresses(ctx: click.Context, param: click.Parameter,
               value: tuple[str, ...]) -> tuple[str, ...]:
    # Addresses only: a name would be looked up at every start.
    for address in value:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise click.BadParameter(f"{address!r} is not an IP address") from None
    return value


def certificate_dir(state_dir: Path) -> Path:
    """Where the self-signed certificate is kept: the portal's own state
    directory when systemd gives it one (``StateDirectory=``, as
    $STATE_DIRECTORY), else the box's ``state_dir``. The portal runs as its
    own user, who cannot write the daemon's directory."""
    given = os.environ.get("STATE_DIRECTORY", "")
    return Path(given.split(":")[0]) if given else state_dir


def default_hosts(config: Config) -> list[str]:
    """The box's LAN addresses: IPv4, and IPv6 when the LAN has it (the
    daemon finds a client arriving over IPv6 by its MAC; docs/portal.md)."""
    six = [str(config.lan_address6.ip)] if config.lan_address6 else []
    return [config.box_ipv4, *six]


@click.group()
def portal() -> None:
    """The captive portal: check-in, personal key, status, RFC 8908 API."""


@portal.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=Path("/etc/passerelle/gateway.toml"), show_default=True,
              help="The box's TOML configuration (the portal's keys are in [portal]).")
@click.option("--listen", multiple=True, callback=_addresses,
              help="IP address to serve on (repeat for several); "
                   "default: the box's LAN IPv4 address, and its IPv6 one if any.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=None,
              help="Default: portal.http_port.")
@click.option("--https-port", type=click.IntRange(1, 65535), default=None,
              help="Default: portal.https_port.")
def run(config_path: Path, listen: tuple[str, ...], http_port: int | None,
        https_port: int | None) -> None:
    """Serve the portal on HTTP and HTTPS until SIGTERM; it talks only to
    the gateway daemon's control socket."""
    from passerelle.gateway.config import load
    from passerelle.gateway.control import ControlClient

    from .app import create_app
    from .server import portal_listeners, serve
    from .settings import PortalSettings
    from .tls import ensure_certificate, server_context

    # The RADIUS secrets are not the portal's: it never reads them.
    config = load(config_path, read_secrets=False)
    settings = PortalSettings.from_config(config)
    cert, key = ensure_certificate(config.portal_hostname, certificate_dir(config.state_dir),
                                   config.cert_file, config.key_file)
    app = create_app(settings, ControlClient(config.control_socket, timeout=15))
    listeners = portal_listeners(list(listen) or default_hosts(config),
                                 http_port or config.portal_http_port,
                                 https_port or config.portal_https_port)
    serve(app, listeners, server_context(cert, key))


def register(root: click.Group) -> None:
    root.add_command(portal)
