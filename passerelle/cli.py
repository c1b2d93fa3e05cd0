"""The ``passerelle`` command: one entry point for every part."""

from __future__ import annotations

import logging
import sys

import click

from . import journal
from .errors import UserError


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if journal.to_journal():  # one line per event, key=value (passerelle/journal.py)
        for handler in logging.getLogger().handlers:
            handler.setFormatter(journal.JournalFormatter())


class _Parts(click.Group):
    """Each part's commands are imported when first asked for: a box's
    services (`gateway run`, `portal run`) must answer soon after a boot and
    do not wait for the centre's imports (SQLAlchemy, Alembic: seconds on a
    small box). `passerelle --help` still lists them all."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        _register(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register(None)
        return super().list_commands(ctx)


@click.group(cls=_Parts)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="passerelle")
def cli(verbose: bool) -> None:
    """Passerelle: Wi-Fi for a network of shared telework sites."""
    setup_logging(verbose)


def _register(name: str | None) -> None:
    """Register the part that owns command ``name``; all parts for None or
    a command of the centre's."""
    if name is not None and name in cli.commands:
        return
    if name == "gateway":
        from .gateway.cli import register as register_gateway
        register_gateway(cli)
        return
    if name == "portal":
        from .portal.cli import register as register_portal
        register_portal(cli)
        return
    from .gateway.cli import register as register_gateway
    from .lab.cli import register as register_lab
    from .portal.cli import register as register_portal
    from .portal.console.cli import register as register_console
    from .radius.cli import register as register_radius

    register_radius(cli)
    register_gateway(cli)
    register_portal(cli)
    register_lab(cli)
    register_console(cli)


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
