"""The session state machine of the box: the pure core.

Every event (check-in accepted, a tick of the clock with the kernel's
counters, check-out, a Disconnect- or CoA-Request, the client gone, the
daemon restarting) goes in with the time; out come the new session and the
actions the daemon must carry out (allow or revoke in nftables, send an
accounting record). No sockets, no clock of its own: the tests drive it.

Times are Unix seconds (floats). Counters are the session's cumulative
octets and packets; ``up`` is from the client (RADIUS Acct-Input-*), ``down``
towards it (Acct-Output-*), as the NAS sees them (RFC 2866).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from passerelle.radius.messages import AcctStatus, TerminateCause

from .acct import AccountingRecord

# The causes the box reports (RFC 2866 section 5.10): USER_REQUEST (check-out),
# LOST_CARRIER (the client left: no lease, no ARP answer), IDLE_TIMEOUT,
# SESSION_TIMEOUT, ADMIN_RESET (a Disconnect-Request, an operator),
# NAS_REQUEST, NAS_REBOOT (the box restarted and the kernel lost the session).
Cause = TerminateCause
_CAUSE_NAMED = {cause.label: cause for cause in TerminateCause}


@dataclass(frozen=True)
class Terms:
    """What the centre's Access-Accept granted."""

    session_timeout: int | None = None
    idle_timeout: int | None = None
    interim_interval: int | None = None
    class_: bytes | None = None
    bandwidth_up: int | None = None
    bandwidth_down: int | None = None
    # The company's VLAN (Tunnel-Private-Group-Id); None: none. Rows saved
    # before it existed read back as None.
    vlan: int | None = None
    # The person's credit (seconds) when the centre accepted; None: the
    # centre did not say (or the row predates it).
    credit_left: int | None = None


@dataclass(frozen=True)
class Counters:
    """Cumulative traffic as the kernel counts it for one client entry."""

    bytes_up: int = 0
    bytes_down: int = 0
    packets_up: int = 0
    packets_down: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(self.bytes_up + other.bytes_up, self.bytes_down + other.bytes_down,
                        self.packets_up + other.packets_up,
                        self.packets_down + other.packets_down)

    def less_than(self, other: Counters) -> bool:
        """True when ``self`` went backwards compared to ``other``: the
        kernel's entry was re-created and its counters restarted at zero."""
        return (self.bytes_up < other.bytes_up or self.bytes_down < other.bytes_down
                or self.packets_up < other.packets_up
                or self.packets_down < other.packets_down)


@dataclass(frozen=True)
class Session:
    session_id: str  # Acct-Session-Id, unique on this box
    login: str
    mac: str  # aa:bb:cc:dd:ee:ff
    ipv4: str
    started: float
    terms: Terms
    ipv6: tuple[str, ...] = ()
    # Traffic of entries the kernel no longer has (after a re-created entry).
    carried: Counters = Counters()
    # The kernel entry's counters at the last observation.
    kernel: Counters = Counters()
    last_activity: float = 0.0
    last_interim: float = 0.0
    stopped: float | None = None
    cause: TerminateCause | None = None
    # The session time reported at Stop (idle time is not charged).
    final_time: int | None = None

    def __post_init__(self) -> None:
        # The session table keeps sessions as JSON: the cause comes back as
        # its number, or as its RFC name or "" (none) from earlier versions.
        cause: object = self.cause
        if isinstance(cause, str):
            if cause and cause not in _CAUSE_NAMED:
                raise ValueError(f"Acct-Terminate-Cause {cause!r} is not one of RFC 2866 "
                                 "section 5.10")
            cause = _CAUSE_NAMED[cause] if cause else None
        elif isinstance(cause, int) and not isinstance(cause, TerminateCause):
            cause = TerminateCause(cause)
        object.__setattr__(self, "cause", cause)

    @property
    def counters(self) -> Counters:
        return self.carried + self.kernel

    @property
    def ends(self) -> float | None:
        """When the Session-Timeout runs out, or None."""
        if self.terms.session_timeout is None:
            return None
        return self.started + self.terms.session_timeout

    def time_left(self, now: float) -> int | None:
        ends = self.ends
        return None if ends is None else max(0, int(ends - now))

    def credit_left(self, now: float) -> int | None:
        """The credit at check-in less this session's time so far (the
        centre charges once, at the Stop); another device's use meanwhile is
        seen only at the next check-in."""
        if self.terms.credit_left is None:
            return None
        return max(0, self.terms.credit_left - int(now - self.started))


# --- actions -----------------------------------------------------------------


@dataclass(frozen=True)
class Allow:
    """Put (mac, ipv4, ipv6) in the kernel's sets for ``timeout`` seconds."""

    session: Session
    timeout: int


@dataclass(frozen=True)
class Extend:
    """Give the kernel's entry a new timeout, keeping its counters (CoA)."""

    session: Session
    timeout: int


@dataclass(frozen=True)
class Rates:
    """New bandwidth caps for the kernel's entry (CoA), counters kept."""

    session: Session


@dataclass(frozen=True)
class Revoke:
    session: Session


@dataclass(frozen=True)
class SendRecord:
    """Send ``record`` to the centre (the executor spools it before the rest)."""

    record: AccountingRecord


@dataclass(frozen=True)
class Release:
    """The session ended: an access point that holds its person's station on
    the private SSID lets it go (RFC 5176 Disconnect, where the site says so;
    gateway/ap_dae.py decides which)."""

    session: Session


Action = Allow | Extend | Rates | Revoke | SendRecord | Release

# The kernel needs a timeout; a session without Session-Timeout is still cut
# by the box's sweep, this is only the safety net if the daemon is gone.
NO_TIMEOUT = 24 * 3600
# The longest kernel timeout we set: nftables refuses a set element's
# timeout from about 10^8 s (three years), and a Session-Timeout that long
# comes from years of credit; the sweep puts an entry that ran out early back.
KERNEL_MAX = 30 * 24 * 3600


def kernel_timeout(left: int | None) -> int:
    """The kernel entry's timeout for a session with ``left`` seconds to go
    (None: no Session-Timeout)."""
    return NO_TIMEOUT if left is None else min(max(1, left), KERNEL_MAX)


DEFAULT_INTERIM = 300
MIN_INTERIM = 60  # RFC 2869 5.16: never more often than once a minute


def record(session: Session, status: AcctStatus, now: float) -> AccountingRecord:
    """The accounting record of ``session`` as it stands at ``now``."""
    stopping = status == AcctStatus.STOP
    counters = session.counters
    if stopping and session.final_time is not None:
        session_time = session.final_time
    else:
        session_time = max(0, int(now - session.started))
    return AccountingRecord(
        status=status,
        session_id=session.session_id,
        username=session.login,
        mac=session.mac,
        ipv4=session.ipv4,
        class_=session.terms.class_,
        session_time=session_time,
        input_octets=counters.bytes_up,
        output_octets=counters.bytes_down,
        input_packets=counters.packets_up,
        output_packets=counters.packets_down,
        terminate_cause=session.cause if stopping else None,
        event_time=now,
    )


def check_in(session_id: str, login: str, mac: str, ipv4: str, terms: Terms, now: float,
             ipv6: tuple[str, ...] = ()) -> tuple[Session, list[Action]]:
    """A check-in the centre accepted: open the gate, send Start."""
    session = Session(session_id=session_id, login=login, mac=mac, ipv4=ipv4, ipv6=ipv6,
                      started=now, terms=terms, last_activity=now, last_interim=now)
    return session, [Allow(session, kernel_timeout(terms.session_timeout)),
                     SendRecord(record(session, AcctStatus.START, now))]


def observe(session: Session, kernel: Counters, now: float) -> Session:
    """Fold the kernel's counters for the session's entry in."""
    carried = session.carried
    if kernel.less_than(session.kernel):
        carried = carried + session.kernel
    moved = kernel != session.kernel or carried != session.carried
    return replace(session, carried=carried, kernel=kernel,
                   last_activity=now if moved else session.last_activity)


def end(session: Session, cause: TerminateCause, now: float) -> tuple[Session, list[Action]]:
    """Close the session: revoke it and send Stop (once: a stopped session
    stays stopped whatever comes after)."""
    if session.stopped is not None:
        return session, []
    stop_at = now
    final = None
    if cause is TerminateCause.SESSION_TIMEOUT and session.ends is not None:
        stop_at = min(now, session.ends)
    if cause is TerminateCause.IDLE_TIMEOUT:
        # The person left the laptop: the idle minutes are not charged.
        final = max(0, int(session.last_activity - session.started))
    done = replace(session, stopped=stop_at, cause=cause, final_time=final)
    return done, [Revoke(done), SendRecord(record(done, AcctStatus.STOP, stop_at)), Release(done)]


def tick(session: Session, now: float, default_interim: int = DEFAULT_INTERIM,
         default_idle: int | None = None) -> tuple[Session, list[Action]]:
    """What the clock says: time up, idle, or an interim update due."""
    if session.stopped is not None:
        return session, []
    ends = session.ends
    if ends is not None and now >= ends:
        return end(session, TerminateCause.SESSION_TIMEOUT, now)
    idle = session.terms.idle_timeout or default_idle
    if idle and now - session.last_activity >= idle:
        return end(session, TerminateCause.IDLE_TIMEOUT, now)
    interval = max(MIN_INTERIM, session.terms.interim_interval or default_interim)
    if now - session.last_interim >= interval:
        due = replace(session, last_interim=now)
        return due, [SendRecord(record(due, AcctStatus.INTERIM_UPDATE, now))]
    return session, []


def change(session: Session, now: float, session_timeout: int | None = None,
           bandwidth_up: int | None = None, bandwidth_down: int | None = None,
           event_timestamp: float | None = None) -> tuple[Session, list[Action]]:
    """A CoA-Request: new Session-Timeout or caps. The Session-Timeout runs
    from the request's ``event_timestamp`` (RFC 5176 section 3.3), so a CoA
    that arrives late or is replayed within the window cannot lengthen the
    session; a stamp ahead of our clock counts from ``now``; without one,
    from ``now``."""
    if session.stopped is not None:
        return session, []
    terms = session.terms
    actions: list[Action] = []
    if session_timeout is not None:
        since = now if event_timestamp is None else min(event_timestamp, now)
        # Session-Timeout counts from the start of the session in our terms.
        terms = replace(terms, session_timeout=max(0, int(since - session.started)
                                                   + session_timeout))
    if bandwidth_up is not None:
        terms = replace(terms, bandwidth_up=bandwidth_up)
    if bandwidth_down is not None:
        terms = replace(terms, bandwidth_down=bandwidth_down)
    changed = replace(session, terms=terms)
    if session_timeout is not None:
        actions.append(Extend(changed, kernel_timeout(changed.time_left(now) or 0)))
    if bandwidth_up is not None or bandwidth_down is not None:
        actions.append(Rates(changed))
    return changed, actions


def readdress(session: Session, ipv6: tuple[str, ...],
              now: float) -> tuple[Session, list[Action]]:
    """The client has new IPv6 addresses: its kernel entries are replaced
    (their counters restart; ``observe`` carries the old totals over)."""
    if session.stopped is not None or ipv6 == session.ipv6:
        return session, []
    moved = replace(session, ipv6=ipv6, carried=session.counters, kernel=Counters())
    left = moved.time_left(now)
    return moved, [Allow(moved, kernel_timeout(left))]


def restore(session: Session, in_kernel: bool, kernel: Counters | None, now: float,
            last_alive: float) -> tuple[Session, list[Action]]:
    """The daemon started again and found ``session`` in its table.

    ``in_kernel``: the kernel still has the entry (the daemon alone
    restarted; the kernel kept enforcing). ``last_alive``: the last time the
    daemon was known alive (its heartbeat), for sessions the kernel lost.
    """
    if session.stopped is not None:
        return session, []
    if in_kernel and kernel is not None:
        return tick(observe(session, kernel, now), now)
    ends = session.ends
    if ends is not None and ends <= now:
        # Expired while the daemon was away: it ended when its time was up.
        return end(session, TerminateCause.SESSION_TIMEOUT, ends)
    # The kernel lost it with time left: the box rebooted.
    return end(session, TerminateCause.NAS_REBOOT, min(now, max(last_alive, session.started)))
