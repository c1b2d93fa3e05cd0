"""The console's own state, kept in ``app.extensions``: no globals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from passerelle.portal.limits import Limiter
from passerelle.radius import dae

from .settings import ConsoleSettings

KEY = "passerelle.console"

Disconnect = Callable[[dae.Target, dict[str, Any]], dae.Result]


@dataclass
class Console:
    settings: ConsoleSettings
    factory: sessionmaker[Session]
    clock: Callable[[], float]  # seconds since the epoch
    disconnect: Disconnect
    by_login: Limiter
    by_address: Limiter

    def now(self) -> datetime:
        """Naive UTC, like every timestamp in the database."""
        return datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None)


def console() -> Console:
    state: Console = current_app.extensions[KEY]
    return state
