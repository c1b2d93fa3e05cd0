"""The gateway daemon: the adapters around the session state machine.

``Daemon`` owns the session table. Every change goes through
``sessions.py`` (pure) and its actions are carried out in one order that
keeps the promise "nothing lost, nothing counted twice" across a crash at
any point:

1. accounting records go to the spool (durable when ``put`` returns);
2. the session is saved to the on-disk table;
3. the kernel is told (allow / revoke).

A crash between 1 and 2 can only resend a record the centre has already
folded in (it is idempotent on Acct-Session-Id); a crash between 2 and 3 is
repaired at restart by reconciling the table with the kernel's sets.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, assert_never

from passerelle.radius.logins import lookup_key
from passerelle.refusal import Refusal

from . import joins, metrics
from . import sessions as sm
from .acct import AccountingRecord
from .ap_dae import Releaser
from .ap_server import ApKey
from .clients import Clients
from .config import Config
from .dae_server import CoaChange, Selector
from .keysync import KeySync, SyncError
from .nft import NotAllowed
from .radclient import AuthResult, NoServer, RadiusClient
from .session_table import SessionTable
from .sessions import Action, Cause, Counters, Session, Terms
from .spool import Spool

log = logging.getLogger("passerelle.gateway")


class Allowed(Protocol):
    """A client entry in the kernel's sets, with its counters."""

    @property
    def mac(self) -> str: ...
    @property
    def ipv4(self) -> str: ...
    @property
    def bytes_up(self) -> int: ...
    @property
    def bytes_down(self) -> int: ...
    @property
    def packets_up(self) -> int: ...
    @property
    def packets_down(self) -> int: ...


class DataPlane(Protocol):
    def apply(self) -> None: ...
    def allow(self, mac: str, ipv4: str, ipv6: Sequence[str] = (), timeout: int = 3600,
              rate_up: int | None = None, rate_down: int | None = None) -> None: ...
    def revoke(self, mac: str, ipv4: str, ipv6: Sequence[str] = ()) -> None: ...
    def set_timeout(self, mac: str, ipv4: str, ipv6: Sequence[str], timeout: int) -> None: ...
    def set_rates(self, mac: str, ipv4: str, ipv6: Sequence[str], rate_up: int | None,
                  rate_down: int | None) -> None: ...
    def clients(self) -> Sequence[Allowed]: ...


def table_exists(table: str = "passerelle") -> bool:
    """Whether the kernel still has our table: after a daemon restart it
    does, after a reboot it does not."""
    out = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True,
                         check=False)
    return out.returncode == 0


def new_session_id(now: float) -> str:
    """Acct-Session-Id: unique on this box, sortable by start time."""
    return f"{int(now):08X}-{secrets.token_hex(4).upper()}"


@dataclass
class Refused(Exception):
    refusal: Refusal  # the box's own, or the centre's from the Reply-Message
    message: str

    @property
    def code(self) -> str:
        return self.refusal.value


class Daemon:
    def __init__(self, config: Config, *, firewall: DataPlane, radius: RadiusClient,
                 spool: Spool, store: SessionTable, clients: Clients,
                 wake_spool: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.firewall = firewall
        self.radius = radius
        self.spool = spool
        self.store = store
        self.clients = clients
        self.wake_spool = wake_spool
        self.clock = clock
        self._lock = threading.RLock()
        self._open: dict[str, Session] = {}
        # Shown again on the status page; never written to disk.
        self._keys: dict[str, str] = {}
        # Duplicate MACs already logged (mac -> addresses), to log each once.
        self._warned: dict[str, list[str]] = {}
        # The access points' server, when the box has access points (set by service.Box).
        self.stations: Releaser | None = None
        # The check-in last tried by key for each station (joins.Tried), by MAC.
        self._tried: dict[str, joins.Tried] = {}
        # keys_for_ap's last list and what it was made of.
        self._ap_keys: tuple[tuple[Any, ...], list[ApKey]] | None = None

    # --- carrying out actions --------------------------------------------------

    def _carry_out(self, session: Session, actions: list[Action]) -> None:
        """Carry out ``actions`` in the order at the top of this module:
        the spool, then the table, then the kernel. An action this executor
        does not know raises before any of them is carried out."""
        records, kernel = _split(actions)
        for record in records:
            self.spool.put(record)
        self.store.save(session)
        if session.stopped is None:
            self._open[session.session_id] = session
        else:
            self._open.pop(session.session_id, None)
            self._keys.pop(session.session_id, None)
        metrics.SESSIONS.set(len(self._open))
        for action in kernel:
            match action:
                case sm.Allow(session=s, timeout=timeout):
                    self.firewall.allow(s.mac, s.ipv4, s.ipv6, timeout=timeout,
                                        rate_up=s.terms.bandwidth_up,
                                        rate_down=s.terms.bandwidth_down)
                case sm.Extend() | sm.Rates():
                    self._change_entry(action)
                case sm.Revoke(session=s):
                    self.firewall.revoke(s.mac, s.ipv4, s.ipv6)
                case sm.Release(session=s):
                    if self.stations is not None:  # queued: no access point is waited for
                        self.stations.release(s, self._open.values())
                case _:
                    assert_never(action)
        if records:
            self.wake_spool()

    def _change_entry(self, action: sm.Extend | sm.Rates) -> None:
        """A CoA on the kernel's entry; an entry that is gone (or has less
        than a second left) is put back whole, with the new terms."""
        s = action.session
        try:
            match action:
                case sm.Extend(timeout=timeout):
                    self.firewall.set_timeout(s.mac, s.ipv4, s.ipv6, timeout)
                case sm.Rates():
                    self.firewall.set_rates(s.mac, s.ipv4, s.ipv6, s.terms.bandwidth_up,
                                            s.terms.bandwidth_down)
                case _:
                    assert_never(action)
        except NotAllowed:
            left = s.time_left(self.clock())
            log.warning("session %s had no kernel entry for a CoA: put back", s.session_id)
            self.firewall.allow(s.mac, s.ipv4, s.ipv6,
                                timeout=sm.kernel_timeout(left),
                                rate_up=s.terms.bandwidth_up, rate_down=s.terms.bandwidth_down)

    def _account_box(self, status: sm.AcctStatus) -> None:
        self.spool.put(AccountingRecord(status=status, event_time=self.clock()))
        self.wake_spool()

    # --- start and restore -------------------------------------------------------

    def restore(self, booted: bool) -> None:
        """Bring back the sessions of the table, reconciled with the kernel.
        ``booted``: the kernel's table was gone (a reboot), so every open
        session ended, and the centre gets Accounting-On after the Stops."""
        now = self.clock()
        last_alive = float(self.store.get_state("heartbeat") or now)
        in_kernel = {(c.mac, c.ipv4): c for c in self.firewall.clients()}
        with self._lock:
            for session in self.store.open_sessions():
                entry = None if booted else in_kernel.get((session.mac, session.ipv4))
                counters = _counters(entry) if entry is not None else None
                restored, actions = sm.restore(session, entry is not None, counters, now,
                                               last_alive)
                self._carry_out(restored, actions)
                if restored.stopped is None:
                    log.info("session %s of %s (%s) restored", restored.session_id,
                             restored.login, restored.ipv4)
                else:
                    log.info("session %s of %s ended while the daemon was down: %s",
                             restored.session_id, restored.login,
                             restored.cause.label if restored.cause else "?")
            if booted:
                self._account_box(sm.AcctStatus.ACCOUNTING_ON)
        self.heartbeat()

    def heartbeat(self) -> None:
        self.store.set_state("heartbeat", repr(self.clock()))

    def prune(self) -> int:
        """Forget sessions stopped longer ago than the retention. Only while
        the spool is empty: a Stop still waiting there must keep its row."""
        if self.spool.pending():
            return 0
        forgotten = self.store.prune(self.clock(), pending=(),
                                     retention=self.config.stopped_retention)
        if forgotten:
            log.info("forgot %d stopped sessions older than %.0f days", forgotten,
                     self.config.stopped_retention / 86400)
        return forgotten

    # --- the clock -------------------------------------------------------------

    def sweep(self) -> None:
        """Read the kernel's counters, then let the clock speak."""
        now = self.clock()
        # Only the sessions open before the kernel was read: one checked in
        # meanwhile is not in the listing, and putting it "back" would
        # replace its entries (and lose its first packets' counts).
        with self._lock:
            listed = set(self._open)
        in_kernel = {(c.mac, c.ipv4): c for c in self.firewall.clients()}
        with self._lock:
            for session in [s for s in self._open.values() if s.session_id in listed]:
                entry = in_kernel.get((session.mac, session.ipv4))
                if entry is not None:
                    session = sm.observe(session, _counters(entry), now)
                    session, actions = sm.tick(session, now, self.config.interim_interval,
                                               self.config.idle_timeout or None)
                elif session.ends is not None and session.ends <= now + self.config.sweep_interval:
                    # The kernel's timeout ran out a moment before ours.
                    session, actions = sm.end(session, Cause.SESSION_TIMEOUT, now)
                else:
                    log.warning("session %s (%s) was missing from the kernel: put back",
                                session.session_id, session.ipv4)
                    left = session.time_left(now)
                    actions = [sm.Allow(session, sm.kernel_timeout(left))]
                if actions:
                    self._carry_out(session, actions)
                else:
                    # Counters alone are not written at every sweep (one fsync per
                    # session): they are saved with the next interim, and after a
                    # daemon restart the kernel still holds them.
                    before = self._open[session.session_id]
                    self._open[session.session_id] = session
                    if session.carried != before.carried:
                        self.store.save(session)

    def follow_ipv6(self) -> None:
        """Let a checked-in client's new IPv6 addresses through (privacy
        addresses come and go); until then they are refused, never open.
        Only while the kernel still finds the session's MAC at its IPv4
        address, and never an address another session holds."""
        with self._lock:
            for session in list(self._open.values()):
                if self.config.vlan_of(session.ipv4) is not None:
                    continue  # no IPv6 on a VLAN: its MAC's addresses elsewhere are not its
                seen = self.clients.ipv6_of(session.mac)
                held = {a for s in self._open.values() if s is not session for a in s.ipv6}
                new = set(seen) - set(session.ipv6) - held
                if not new:
                    continue
                holder = self.clients.mac_of(session.ipv4)
                if holder != session.mac:
                    log.warning("IPv6 %s not followed for session %s: %s is at %s, not %s "
                                "(address-taken)", ", ".join(sorted(new)), session.session_id,
                                holder, session.ipv4, session.mac)
                    continue
                now = self.clock()
                self._refresh(session)
                current = self._open[session.session_id]
                moved, actions = sm.readdress(current, tuple(sorted(new | set(current.ipv6))),
                                              now)
                self._carry_out(moved, actions)

    def check_presence(self) -> None:
        """End the sessions of clients that left (no lease, no ARP answer)."""
        with self._lock:
            candidates = list(self._open.values())
        for session in candidates:
            if self.clients.present(session.ipv4, session.mac):
                continue
            self.end_session(session.session_id, Cause.LOST_CARRIER)
        self._warn_duplicates()

    def duplicates(self) -> dict[str, list[str]]:
        """MACs of open sessions seen at more than one IPv4 address (by the
        kernel's neighbour table, or in two sessions): mac -> addresses."""
        with self._lock:
            by_mac: dict[str, set[str]] = {}
            for s in self._open.values():
                by_mac.setdefault(s.mac, set()).add(s.ipv4)
        found = {}
        for mac, ips in by_mac.items():
            everywhere = ips | set(self.clients.ipv4_of(mac))
            if len(everywhere) > 1:
                found[mac] = sorted(everywhere)
        return found

    def _warn_duplicates(self) -> None:
        found = self.duplicates()
        for mac, ips in found.items():
            if self._warned.get(mac) != ips:
                log.warning("MAC %s on two addresses (%s): a cloned MAC, or a device with "
                            "two addresses", mac, ", ".join(ips))
        self._warned = found

    def end_session(self, session_id: str, cause: Cause) -> bool:
        with self._lock:
            session = self._open.get(session_id)
            if session is None:
                return False
            self._refresh(session)
            session = self._open[session_id]
            ended, actions = sm.end(session, cause, self.clock())
            self._carry_out(ended, actions)
            log.info("session %s of %s ended: %s", session_id, session.login, cause.label)
            return True

    def _refresh(self, session: Session) -> None:
        """Fold the latest kernel counters in, so a Stop reports them."""
        for entry in self.firewall.clients():
            if (entry.mac, entry.ipv4) == (session.mac, session.ipv4):
                self._open[session.session_id] = sm.observe(session, _counters(entry),
                                                            self.clock())
                return

    # --- the portal's calls ------------------------------------------------------

    def _session_at(self, ip: str, mac: str | None) -> Session | None:
        """The open session of (``mac``, ``ip``), ``mac`` being what the
        kernel knows at ``ip``; None when ``ip`` has none. A session of ``ip``
        under another MAC is another device's: Refused(address_taken), logged."""
        for session in self._open.values():
            if session.ipv4 != ip:
                continue
            if mac == session.mac:
                return session
            log.warning("%s claims %s, the address of session %s of %s (%s): refused "
                        "(address-taken)", mac or "an unknown MAC", ip, session.session_id,
                        session.login, session.mac)
            raise Refused(Refusal.address_taken,
                          f"{ip} belongs to a session of another device")
        return None

    def _other_session_at(self, ip: str, mac: str) -> Session | None:
        """An open session of ``ip`` under a MAC other than ``mac``."""
        return next((s for s in self._open.values() if s.ipv4 == ip and s.mac != mac), None)

    def _ipv4_for(self, ip: str) -> str | None:
        """``ip`` unless it is IPv6. Sessions are known by IPv4 address: for
        an IPv6 address (the portal over IPv6), the IPv4 address of the same
        device by the MAC the kernel sees at both; the one of its session if
        it has two; None when there is not exactly one."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ip  # refused below like any address with no client
        if addr.version == 4:
            return ip
        mac, found = self.clients.ipv4_of_ipv6(str(addr))
        with self._lock:
            held = [s.ipv4 for s in self._open.values() if s.mac == mac and s.ipv4 in found]
        if len(held) == 1 or len(found) == 1:
            return (held or found)[0]
        log.info("no single IPv4 address for %s (%s): %s", ip, mac or "no MAC known",
                 ", ".join(found) or "none")
        return None

    def check_in(self, ip: str, login: str, password: str, chap: bool = False, *,
                 proof: tuple[str, str] | None = None) -> dict[str, Any]:
        """``proof``: (MAC, key id) of a check-in by key (``check_in_by_key``),
        no password: the station at ``ip`` must be that MAC."""
        asked, v4 = ip, self._ipv4_for(ip)
        if v4 is None:
            raise Refused(Refusal.unknown_client, f"no IPv4 address known for {asked}")
        ip = v4
        mac = self.clients.mac_of(ip)
        if mac is None:
            raise Refused(Refusal.unknown_client, f"no client with address {ip} on the LAN")
        if proof is not None and proof[0] != mac:
            raise Refused(Refusal.unknown_client, f"{ip} is {mac}, not the station {proof[0]}")
        with self._lock:
            other = self._other_session_at(ip, mac)
            if other is None and self._session_at(ip, mac) is not None:
                # Never hand out a session (and its key) without credentials.
                raise Refused(Refusal.already_checked_in, f"{ip} has a session already")
        if other is not None:
            # The address is another device's while that device is still here
            # (holds its lease or answers ARP at its MAC); a device gone without
            # a word leaves its address to the next.
            if self.clients.present(other.ipv4, other.mac):
                with self._lock:
                    self._session_at(ip, mac)  # logs and refuses, if still so
            else:
                self.end_session(other.session_id, Cause.LOST_CARRIER)
        try:
            result: AuthResult = self.radius.authenticate(
                login, password, mac=mac, ipv4=ip, chap=chap,
                key_id=int(proof[1]) if proof is not None else None)
        except NoServer as exc:
            log.warning("check-in of %s at %s: the centre did not answer (%s)", login, ip, exc)
            raise Refused(Refusal.centre_unreachable, "the centre did not answer") from None
        except ValueError as exc:  # e.g. a password RADIUS cannot carry
            raise Refused(Refusal.bad_request, str(exc)) from None
        if not result.accepted:
            log.info("check-in of %s at %s refused: %s", login, ip, result.reply_message)
            refusal, text = Refusal.from_reply_message(result.reply_message)
            if proof is not None and refusal is Refusal.bad_credentials:
                refusal = Refusal.key_not_current  # no password was sent: the key failed
            raise Refused(refusal, text)
        here = self.config.vlan_of(ip)
        if here is not None and result.vlan != here.id:
            # The untagged LAN is the open check-in network for everyone; a
            # company's VLAN is for its own people only. Nothing was started
            # at the centre, so nothing is charged.
            company = f"VLAN {result.vlan}" if result.vlan is not None else "no VLAN"
            log.warning("check-in of %s at %s refused: the client is on VLAN %d, its "
                        "company has %s (wrong-vlan)", login, ip, here.id, company)
            raise Refused(Refusal.wrong_vlan, f"{ip} is on VLAN {here.id}; {login}'s company "
                          f"has {company}")
        terms = Terms(session_timeout=result.session_timeout, idle_timeout=result.idle_timeout,
                      interim_interval=result.interim_interval, class_=result.class_,
                      bandwidth_up=result.bandwidth_up, bandwidth_down=result.bandwidth_down,
                      vlan=result.vlan, credit_left=result.credit_left)
        with self._lock:
            current = self._session_at(ip, mac)
            if current is not None:
                # A second check-in of this device won the race.
                self.end_session(current.session_id, Cause.NAS_REQUEST)
            elsewhere = [s.ipv4 for s in self._open.values() if s.mac == mac]
            if elsewhere:
                log.warning("MAC %s on two addresses: checks in at %s with a session at %s",
                            mac, ip, ", ".join(elsewhere))
            now = self.clock()
            session, actions = sm.check_in(new_session_id(now), login, mac, ip, terms, now,
                                           self.clients.ipv6_of(mac))
            if result.wifi_key:
                self._keys[session.session_id] = result.wifi_key
            self._carry_out(session, actions)
        log.info("check-in of %s at %s (%s): session %s", login, ip, mac, session.session_id)
        if self.stations is not None:
            self.stations.keys_changed()
        return self._describe(session)

    def check_out(self, ip: str) -> dict[str, Any]:
        ip, mac = self._client_at(ip)
        with self._lock:
            session = self._session_at(ip, mac)
            if session is None:
                raise Refused(Refusal.no_session, f"no session for {ip}")
            self.end_session(session.session_id, Cause.USER_REQUEST)
            return {"ended": session.session_id}

    def who(self, ip: str) -> dict[str, Any]:
        """The client at ``ip`` as the kernel sees it (its MAC) and the
        session of that (MAC, IP); Refused(address_taken) when the address
        has another MAC's session. An IPv6 address is answered for the
        device's IPv4 address (``ip`` then names the latter)."""
        v4 = self._ipv4_for(ip)
        if v4 is None:
            return {"ip": ip, "mac": None, "session": None}
        ip = v4
        mac = self.clients.mac_of(ip)
        with self._lock:
            session = self._session_at(ip, mac)
            described = self._describe(session) if session else None
        return {"ip": ip, "mac": mac, "session": described}

    def sessions(self) -> list[dict[str, Any]]:
        """Every open session; ``duplicate_mac``: the other addresses where
        the kernel sees its MAC (shown to ops; empty when none)."""
        duplicates = self.duplicates()
        with self._lock:
            return [{**self._describe(s),
                     "duplicate_mac": [ip for ip in duplicates.get(s.mac, []) if ip != s.ipv4]}
                    for s in self._open.values()]

    def status(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._open)
        return {"identifier": self.config.identifier, "sessions": count,
                "spool_pending": self.spool.pending(), "time": self.clock(),
                "duplicate_macs": self.duplicates()}

    def _describe(self, session: Session) -> dict[str, Any]:
        now = self.clock()
        counters = session.counters
        return {
            "session_id": session.session_id, "login": session.login, "mac": session.mac,
            "ip": session.ipv4, "started": session.started,
            "seconds_used": int(now - session.started),
            "seconds_left": session.time_left(now),
            "credit_seconds_left": session.credit_left(now),
            "bytes_up": counters.bytes_up, "bytes_down": counters.bytes_down,
            "wifi_key": self._keys.get(session.session_id),
            "idle_timeout": session.terms.idle_timeout,
            "bandwidth_up": session.terms.bandwidth_up,
            "bandwidth_down": session.terms.bandwidth_down,
            "vlan": session.terms.vlan,
        }

    # --- Disconnect- and CoA-Requests (gateway.dae_server.Sessions) ----------

    def _matching(self, selector: Selector) -> list[Session]:
        found = []
        for s in self._open.values():
            if selector.acct_session_id is not None and s.session_id != selector.acct_session_id:
                continue
            if selector.user_name is not None and s.login != selector.user_name:
                continue
            if selector.framed_ip is not None and s.ipv4 != selector.framed_ip:
                continue
            # The DAE server gives Calling-Station-Id in our spelling, aa:bb:...
            if (selector.calling_station_id is not None
                    and selector.calling_station_id != s.mac):
                continue
            found.append(s)
        return found

    def session_of(self, person: str | None, mac: str) -> tuple[str, str] | None:
        """``ap_dae.SessionFinder``: the open session a station of the private
        SSID belongs to: the one checked in with its MAC, else its person's."""
        with self._lock:
            found = next((s for s in self._open.values() if s.mac == mac), None) or next(
                (s for s in self._open.values() if person is not None and s.login == person),
                None)
            return (found.session_id, found.login) if found is not None else None

    def disconnect(self, selector: Selector) -> int:
        with self._lock:
            targets = self._matching(selector)
            for s in targets:
                self.end_session(s.session_id, Cause.ADMIN_RESET)
        return len(targets)

    def change(self, selector: Selector, change: CoaChange) -> int:
        with self._lock:
            targets = self._matching(selector)
            now = self.clock()
            for s in targets:
                changed, actions = sm.change(s, now, change.session_timeout,
                                             change.bandwidth_up, change.bandwidth_down,
                                             change.event_timestamp)
                self._carry_out(changed, actions)
        return len(targets)

    # --- personal Wi-Fi keys (gateway.ap_server.KeySource, the portal's key page) --

    # The keys pulled from the centre (service.py sets it when the box has a
    # [keys] section); None: the keys of the sessions open here only.
    personal_keys: KeySync | None = None

    def _fallback(self, session: Session) -> bool:
        """Whether a session's check-in key stands in for a pulled one: only
        until a pull asked after the check-in (a revoked key must not live on
        in a session)."""
        pulled = self.personal_keys
        return pulled is None or pulled.pulled_at < session.started

    def keys_for_ap(self) -> list[ApKey]:
        """The keys of the people allowed at this site (pulled from the
        centre), each with the MAC its owner checked in with here if they
        did; and the key of a check-in not pulled yet (a first check-in).
        The same list as last time when none of that changed (KeySource)."""
        with self._lock:
            opened = [(sid, s, self._keys.get(sid)) for sid, s in self._open.items()]
        pulled = self.personal_keys
        # What the list is made of, but the pulled keys themselves: their
        # source and generation stand for them (a few open sessions,
        # thousands of keys).
        stamp = (pulled, pulled.generation if pulled is not None else None,
                 tuple((sid, s.login, s.mac, s.terms.vlan, key, self._fallback(s))
                       for sid, s, key in opened))
        last = self._ap_keys
        if last is not None and last[0] == stamp:
            return last[1]
        generation, held = pulled.held() if pulled is not None else (None, [])
        macs = {_stored(s.login): s.mac for _, s, _ in opened}
        found = [ApKey(person=k.login, key_id=str(k.id), passphrase=k.passphrase,
                       vlan=k.vlan, mac=macs.get(k.login)) for k in held]
        logins = {k.login for k in held}
        found += [ApKey(person=s.login, key_id=sid, passphrase=key, mac=s.mac,
                        vlan=s.terms.vlan)
                  for sid, s, key in opened
                  if key and _stored(s.login) not in logins and self._fallback(s)]
        # Under the generation read with the keys: a pull between the two
        # reads makes the next call build the list again.
        self._ap_keys = ((pulled, generation, stamp[2]), found)
        return found

    def _client_at(self, ip: str) -> tuple[str, str | None]:
        """(IPv4, MAC) of the client asking from ``ip`` (an IPv6 address
        stands for the IPv4 of its MAC); Refused when there is none."""
        v4 = self._ipv4_for(ip)
        if v4 is None:
            raise Refused(Refusal.no_session, f"no session for {ip}")
        return v4, self.clients.mac_of(v4)

    def _key_session(self, ip: str) -> Session:
        ip, mac = self._client_at(ip)
        with self._lock:
            session = self._session_at(ip, mac)
        if session is None:
            raise Refused(Refusal.no_session, f"no session for {ip}")
        return session

    def key_of(self, ip: str) -> dict[str, Any]:
        """The personal key of the person checked in at ``ip``, for their
        key and account pages: the pulled one, else the check-in's."""
        session = self._key_session(ip)
        pulled = self.personal_keys.of(_stored(session.login)) if self.personal_keys else None
        if pulled is not None:
            return {"login": session.login, "session_id": session.session_id,
                    "key": pulled.passphrase, "serial": pulled.serial, "ssid": pulled.ssid}
        with self._lock:
            key = self._keys.get(session.session_id) if self._fallback(session) else None
        return {"login": session.login, "session_id": session.session_id, "key": key,
                "serial": None, "ssid": self.config.wifi_ssid}

    def rotate_key(self, ip: str) -> dict[str, Any]:
        """A new key for the person checked in at ``ip``, made by the centre."""
        session = self._key_session(ip)
        if self.personal_keys is None:
            raise Refused(Refusal.box_unavailable, "this box has no [keys] section: keys "
                          "are rotated by the centre's operators")
        try:
            made = self.personal_keys.rotate(session.login)
        except SyncError as exc:
            log.warning("key rotation for %s at %s failed: %s", session.login, ip, exc)
            raise Refused(Refusal.centre_unreachable, str(exc)) from None
        with self._lock:
            for sid, s in self._open.items():
                if _stored(s.login) == _stored(session.login) and sid in self._keys:
                    self._keys[sid] = made.passphrase
        log.info("key of %s rotated from %s: serial %d", session.login, ip, made.serial)
        return {"login": made.login, "session_id": session.session_id,
                "key": made.passphrase, "serial": made.serial, "ssid": made.ssid}

    # --- joining the private SSID (gateway.joins) ---------------------------------

    # Who the stations are, from the access points' requests (service.py sets
    # it when the box has access points). Never asked with self._lock held:
    # the access points' server takes its lock, then this one.
    identities: joins.Identities | None = None

    def _identity_at(self, ip: str) -> tuple[str | None, str | None, joins.Identity | None]:
        """(IPv4, MAC, whose key opened it) of the station at ``ip``."""
        v4 = self._ipv4_for(ip)
        mac = self.clients.mac_of(v4) if v4 is not None else None
        found = self.identities.identity(mac) if mac and self.identities else None
        return v4, mac, found

    def offer(self, ip: str) -> dict[str, Any]:
        """What the portal offers the station at ``ip`` that has no session
        (``joins.offer``): its person's name and the tap, or the form."""
        v4, mac, found = self._identity_at(ip)
        with self._lock:
            tried = self._tried.get(mac) if mac else None
        made = joins.offer(found, tried, self.config.key_is_identity, self._vlan_id(v4))
        return {"ip": v4 or ip, "mac": mac, **made.document()}

    def check_in_by_key(self, ip: str) -> dict[str, Any]:
        """One tap: check in the person whose key the station at ``ip``
        joined the private SSID with; the centre decides, the key as proof."""
        if self.config.key_is_identity is not joins.KeyIsIdentity.TAP:
            raise Refused(Refusal.bad_request, "this site asks for the password")
        v4, mac, found = self._identity_at(ip)
        if v4 is None or mac is None or found is None:
            raise Refused(Refusal.unknown_client, f"no key known for the station at {ip}")
        return self._check_in_key(v4, mac, found)

    def _vlan_id(self, ip: str | None) -> int | None:
        vlan = self.config.vlan_of(ip) if ip is not None else None
        return vlan.id if vlan is not None else None

    def _check_in_key(self, ip: str, mac: str, found: joins.Identity) -> dict[str, Any]:
        if not found.current:
            raise Refused(Refusal.key_not_current,
                          f"key {found.key_id} of {found.person} is not held here any more")
        if not joins.at_home(found, self._vlan_id(ip)):
            # Off the key's VLAN anyone may wear the station's MAC (docs/keys.md).
            raise Refused(Refusal.unknown_client, f"{ip} is not on VLAN {found.vlan}, where "
                          f"the key of {found.person} put {mac}")
        try:
            granted = self.check_in(ip, found.person, "", proof=(mac, found.key_id))
        except Refused as exc:
            self._note_tried(mac, found, exc.refusal)
            raise
        self._note_tried(mac, found, None)
        return granted

    def _note_tried(self, mac: str, found: joins.Identity, refusal: Refusal | None) -> None:
        with self._lock:
            self._tried[mac] = joins.Tried(found.key_id, found.joined, refusal)
            while len(self._tried) > 65536:  # the oldest first (dicts keep order)
                del self._tried[next(iter(self._tried))]

    def join_sweep(self) -> int:
        """"Joining is checking in" (``[portal] join_checks_in``): check in
        the stations ``joins.due`` names; how many were tried."""
        if not self.config.join_checks_in or self.identities is None:
            return 0
        found = self.identities.identities(self.clock() - joins.JOIN_WINDOW)
        if not found:
            return 0
        with self._lock:
            open_macs = {s.mac for s in self._open.values()}
            tried = dict(self._tried)
        due = joins.due(found, tried, self.clients.addresses(), open_macs, self._vlan_id)
        for action in due:
            try:
                granted = self._check_in_key(action.ip, action.mac, action.identity)
            except Refused as exc:
                log.info("check-in on joining of %s (%s at %s) refused: %s (%s)",
                         action.identity.person, action.mac, action.ip, exc.code, exc.message)
                continue
            log.info("check-in on joining of %s (%s at %s): session %s", action.identity.person,
                     action.mac, action.ip, granted["session_id"])
        return len(due)


def _stored(login: str) -> str:
    """A login as typed at check-in, in the form the centre stores (and the
    pulled keys carry)."""
    return lookup_key(login) or login


KernelAction = sm.Allow | sm.Extend | sm.Rates | sm.Revoke | sm.Release


def _split(actions: list[Action]) -> tuple[list[AccountingRecord], list[KernelAction]]:
    """(records for the spool, changes for the kernel), each in the given order."""
    records: list[AccountingRecord] = []
    kernel: list[KernelAction] = []
    for action in actions:
        match action:
            case sm.SendRecord(record=record):
                records.append(record)
            case sm.Allow() | sm.Extend() | sm.Rates() | sm.Revoke() | sm.Release():
                kernel.append(action)
            case _:
                assert_never(action)
    return records, kernel


def _counters(entry: Allowed) -> Counters:
    return Counters(entry.bytes_up, entry.bytes_down, entry.packets_up, entry.packets_down)
