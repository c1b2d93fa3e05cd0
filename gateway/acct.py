"""Accounting records of the box, as data (pure: no socket, no clock).

A record says what happened and when; ``request(now)`` makes it the
Accounting-Request sent at ``now`` (a ``messages.AccountingRequest``, where
the attributes are named), so a record that waited in the spool carries how
long it waited (Acct-Delay-Time) and keeps the time the event really
happened (Event-Timestamp). The NAS identity is the client's to add.

Status and cause are the shared vocabulary (``AcctStatus``,
``TerminateCause``). The spool stores a record as JSON with their RFC names
("Stop", "User-Request"): the form every version of the box has written, so
records left in the spool by an upgrade are read and delivered.

Directions follow the NAS view of RFC 2866: input is what the client sent
(upload), output what it received (download).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from passerelle.radius import mac as macs
from passerelle.radius.codec import codec
from passerelle.radius.messages import AccountingRequest, AcctStatus, TerminateCause

SESSION_STATUSES = (AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP)
COUNTING_STATUSES = (AcctStatus.INTERIM_UPDATE, AcctStatus.STOP)
MAX_COUNTER = 2**64 - 1
MAX_U32 = 2**32 - 1
_RADIUS = codec().spec("Acct-Authentic").values["RADIUS"]  # RFC 2866 section 5.6
_STATUS_NAMED = {status.label: status for status in AcctStatus}
_CAUSE_NAMED = {cause.label: cause for cause in TerminateCause}


@dataclass(frozen=True)
class AccountingRecord:
    status: AcctStatus
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
    terminate_cause: TerminateCause | None = None  # Stop only
    event_time: float = 0.0  # Unix time of the event

    def __post_init__(self) -> None:
        # A bad record is our bug, not the peer's: refuse it before it can
        # sit in the spool and block everything behind it.
        if not isinstance(self.status, AcctStatus):
            raise ValueError(f"Acct-Status-Type {self.status!r} is not an AcctStatus")
        if self.status in SESSION_STATUSES and not self.session_id:
            raise ValueError(f"an accounting {self.status.label} needs a session_id")
        if self.terminate_cause is not None:
            if self.status != AcctStatus.STOP:
                raise ValueError("Acct-Terminate-Cause belongs in a Stop only")
            if not isinstance(self.terminate_cause, TerminateCause):
                raise ValueError(f"Acct-Terminate-Cause {self.terminate_cause!r} is not a "
                                 "TerminateCause")
        elif self.status == AcctStatus.STOP:
            raise ValueError("a Stop needs a terminate_cause")
        if self.mac:
            macs.parse(self.mac)
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

    def request(self, now: float) -> AccountingRequest:
        """The Accounting-Request of the record sent at ``now``: a new
        Identifier each time (the NAS identity is the client's to add)."""
        counting = self.status in COUNTING_STATUSES
        return AccountingRequest(
            status=self.status,
            # RFC 2866 5.5: every Accounting-Request has one. Accounting-On/Off
            # belong to no session: derive one from the event, so a resend of
            # the same record carries the same id.
            session_id=self.session_id
            or f"{self.status.label.lower()}-{int(self.event_time)}",
            user_name=self.username or None,
            calling_station_id=macs.calling_station_id(self.mac) if self.mac else None,
            framed_ip_address=self.ipv4 or None,
            class_=self.class_,
            acct_authentic=_RADIUS if self.status in SESSION_STATUSES else None,
            session_time=self.session_time if counting else None,
            input_octets=self.input_octets if counting else None,
            output_octets=self.output_octets if counting else None,
            # Packet counters have no gigawords: they wrap, as RFC 2866 says.
            input_packets=self.input_packets & MAX_U32 if counting else None,
            output_packets=self.output_packets & MAX_U32 if counting else None,
            terminate_cause=self.terminate_cause,
            event_timestamp=int(self.event_time) if self.event_time else None,
            delay_time=self.delay(now),
        )

    # -- storage form (the spool) ------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.label
        data["terminate_cause"] = self.terminate_cause.label if self.terminate_cause else ""
        data["class_"] = base64.b64encode(self.class_).decode() if self.class_ is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountingRecord:
        """The record ``to_json`` wrote, in this version or an earlier one;
        ValueError or TypeError if it is not one."""
        fields = dict(data)
        status, cause = fields.get("status"), fields.get("terminate_cause") or None
        if status not in _STATUS_NAMED:
            raise ValueError(f"Acct-Status-Type {status!r} is not one of {list(_STATUS_NAMED)}")
        if cause is not None and cause not in _CAUSE_NAMED:
            raise ValueError(f"Acct-Terminate-Cause {cause!r} is not one of RFC 2866 "
                             "section 5.10")
        fields["status"] = _STATUS_NAMED[status]
        fields["terminate_cause"] = _CAUSE_NAMED[cause] if cause is not None else None
        raw = fields.get("class_")
        fields["class_"] = base64.b64decode(raw, validate=True) if raw is not None else None
        return cls(**fields)
