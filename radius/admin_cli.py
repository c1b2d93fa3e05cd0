"""`passerelle db`, `passerelle admin`, `passerelle demo-data` (being written)."""

import click


@click.group("db")
def db_group() -> None:
    """Database schema."""


@click.group()
def admin() -> None:
    """Manage networks, sites, gateways, companies, people and credit."""


@click.command("demo-data")
def demo_data() -> None:
    """Load the demo network."""
