"""The ``passerelle`` command: one entry point for every part."""

from __future__ import annotations

import logging
import sys

import click

from .errors import UserError


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="passerelle")
def cli(verbose: bool) -> None:
    """Passerelle: Wi-Fi for a network of shared telework sites."""
    setup_logging(verbose)


def _register() -> None:
    # Each part brings its own commands; imported here so `passerelle --help`
    # lists them all.
    from .gateway.cli import register as register_gateway
    from .portal.cli import register as register_portal
    from .portal.console.cli import register as register_console
    from .radius.cli import register as register_radius

    register_radius(cli)
    register_gateway(cli)
    register_portal(cli)
    register_console(cli)


_register()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
