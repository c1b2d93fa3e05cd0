"""Accounting records of the box, as data (pure: no socket, no clock).

A record says what happened and when; ``to_attributes(now)`` turns it into
the attributes of an Accounting-Request sent at ``now``, so a record that
waited in the spool carries how long it waited (Acct-Delay-Time) and keeps
the time the event really happened (Event-Timestamp).

Directions follow the NAS view of RFC 2866: input is what the client sent
(upload), output what it received (download).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from passerelle.radius.protocol import normalise_mac, split_octets

STATUSES = ("Start", "Interim-Update", "Stop", "Accounting-On", "Accounting-Off")
SESSION_STATUSES = ("Start", "Interim-Update", "Stop")
TERMINATE_CAUSES = ("User-Request", "Lost-Carrier", "Idle-Timeout", "Session-Timeout",
                    "Admin-Reset", "Admin-Reboot", "NAS-Request", "NAS-Reboot")
MAX_COUNTER = 2**64 - 1
MAX_U32 = 2**32 - 1


@dataclass(frozen=True)
class AccountingRecord:
    status: str  # one of STATUSES
    session_id: str = ""
    username: str = ""
    mac: str = ""
    ipv4: str = ""
    class_: bytes | None = None
    session_time: int = 0
    input_octets: int = 0  # from the client (upload)
    output_octets: int = 0  # to the client (download)
    input_packets: int = 0
    output_packets: int = 0
    terminate_cause: str = ""  # Stop only
    event_time: float = 0.0  # Unix time of the event

    def __post_init__(self) -> None:
        # A bad record is our bug, not the peer's: refuse it before it can
        # sit in the spool and block everything behind it.
        if self.status not in STATUSES:
            raise ValueError(f"Acct-Status-Type {self.status!r} is not one of {STATUSES}")
        if self.status in SESSION_STATUSES and not self.session_id:
            raise ValueError(f"an accounting {self.status} needs a session_id")
        if self.terminate_cause:
            if self.status != "Stop":
                raise ValueError("Acct-Terminate-Cause belongs in a Stop only")
            if self.terminate_cause not in TERMINATE_CAUSES:
                raise ValueError(f"Acct-Terminate-Cause {self.terminate_cause!r} is not one "
                                 f"of {TERMINATE_CAUSES}")
        elif self.status == "Stop":
            raise ValueError("a Stop needs a terminate_cause")
        if self.mac:
            normalise_mac(self.mac)
        if self.ipv4:
            try:
                ipaddress.IPv4Address(self.ipv4)
            except ValueError as exc:
                raise ValueError(f"not an IPv4 address: {self.ipv4!r}") from exc
        for name in ("session_time", "input_octets", "output_octets", "input_packets",
                     "output_packets"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_COUNTER:
                raise ValueError(f"{name} {value} is out of range")
        if self.session_time > MAX_U32:
            raise ValueError(f"session_time {self.session_time} does not fit 32 bits")
        if len(self.session_id.encode()) > 253 or len(self.username.encode()) > 253:
            raise ValueError("session_id and username must fit a RADIUS attribute")
        if self.class_ is not None and not 1 <= len(self.class_) <= 253:
            raise ValueError("Class must be 1 to 253 octets")

    def delay(self, now: float) -> int:
        """Seconds the record waited before a send at ``now`` (Acct-Delay-Time)."""
        if not self.event_time:
            return 0
        return min(MAX_U32, max(0, int(now - self.event_time)))

    def to_attributes(self, now: float) -> list[tuple[str, Any]]:
        """The record's attributes for an Accounting-Request sent at ``now``
        (the NAS identity is the client's to add)."""
        attrs: list[tuple[str, Any]] = [
            ("Acct-Status-Type", self.status),
            # RFC 2866 5.5: every Accounting-Request has one. Accounting-On/Off
            # belong to no session: derive one from the event, so a resend of
            # the same record carries the same id.
            ("Acct-Session-Id", self.session_id or f"{self.status.lower()}-{int(self.event_time)}"),
        ]
        if self.username:
            attrs.append(("User-Name", self.username))
        if self.mac:
            attrs.append(("Calling-Station-Id", calling_station_id(self.mac)))
        if self.ipv4:
            attrs.append(("Framed-IP-Address", self.ipv4))
        if self.class_ is not None:
            attrs.append(("Class", self.class_))
        if self.status in SESSION_STATUSES:
            attrs.append(("Acct-Authentic", "RADIUS"))
        if self.status in ("Interim-Update", "Stop"):
            attrs.append(("Acct-Session-Time", self.session_time))
            for total, low, high in (
                (self.input_octets, "Acct-Input-Octets", "Acct-Input-Gigawords"),
                (self.output_octets, "Acct-Output-Octets", "Acct-Output-Gigawords"),
            ):
                giga, rest = split_octets(total)
                attrs.append((low, rest))
                if giga:
                    attrs.append((high, giga))
            # Packet counters have no gigawords: they wrap, as RFC 2866 says.
            attrs.append(("Acct-Input-Packets", self.input_packets & MAX_U32))
            attrs.append(("Acct-Output-Packets", self.output_packets & MAX_U32))
        if self.terminate_cause:
            attrs.append(("Acct-Terminate-Cause", self.terminate_cause))
        if self.event_time:
            attrs.append(("Event-Timestamp", int(self.event_time)))
        attrs.append(("Acct-Delay-Time", self.delay(now)))
        return attrs

    # -- storage form (the spool) ------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_"] = base64.b64encode(self.class_).decode() if self.class_ is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountingRecord:
        fields = dict(data)
        raw = fields.get("class_")
        fields["class_"] = base64.b64decode(raw, validate=True) if raw is not None else None
        return cls(**fields)


def calling_station_id(mac: str) -> str:
    """``AA-BB-CC-DD-EE-FF``, the Calling-Station-Id form of RFC 3580."""
    return normalise_mac(mac).upper()
