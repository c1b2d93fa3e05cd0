"""The portal's own state, shared by the app factory and the views."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .limits import Limiter
from .settings import PortalSettings

LANG_COOKIE = "lang"
CONTROL_CALLS = 4


class Control(Protocol):
    """What the portal asks the gateway daemon (gateway.control.ControlClient)."""

    def who(self, ip: str) -> dict[str, Any]: ...
    def check_in(self, ip: str, login: str, password: str,
                 chap: bool = False) -> dict[str, Any]: ...
    def check_out(self, ip: str) -> dict[str, Any]: ...
    def key_of(self, ip: str) -> dict[str, Any]: ...
    def rotate_key(self, ip: str) -> dict[str, Any]: ...
    def offer(self, ip: str) -> dict[str, Any]: ...
    def check_in_by_key(self, ip: str) -> dict[str, Any]: ...


@dataclass
class Portal:
    """The app's own state, kept in ``app.extensions["passerelle.portal"]``."""

    settings: PortalSettings
    control: Control
    secret: bytes = field(repr=False)
    by_mac: Limiter
    by_login: Limiter
    clock: Callable[[], float]
    # Calls in flight on the control socket. The daemon's listen queue is
    # short (5); more at once overflow it under a burst of probes.
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CONTROL_CALLS))
