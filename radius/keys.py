"""Personal Wi-Fi keys: one per person, the same at every site of the network.

The rules live here once: a person's key is issued at their first check-in
(or by ops), rotated by the person (the portal's account page) or by ops,
revoked by ops; rotating revokes the current row and adds the next serial.
The PMK for the network's private SSID is derived once, when the key is
made, and kept sealed beside the passphrase (models.PersonKey).

The boxes pull the keys of the people allowed at their site (``for_site``):
the rows made since the box's cursor (the row ids grow), and the ids and
VLANs of every key allowed there now, so a rotated or revoked key, or a
person no longer allowed, disappears from the box at its next pull.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Text, literal, select, type_coerce
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError
from passerelle.gateway import psk

from . import passwords, policy, reach, store
from .models import DEFAULT_PRIVATE_SSID, Company, Network, Person, PersonKey, Site

log = logging.getLogger("passerelle.radius")


def private_ssid(db: DB, site_id: int | None = None) -> str:
    """The private SSID of ``site_id``'s network (else the first network's)."""
    query = select(Network.private_ssid).order_by(Network.id).limit(1)
    if site_id is not None:
        query = (select(Network.private_ssid).join(Site, Site.network_id == Network.id)
                 .where(Site.id == site_id))
    return db.scalar(query) or DEFAULT_PRIVATE_SSID


def current(db: DB, person_id: int) -> PersonKey | None:
    """The person's key in force, if they have one."""
    return db.scalar(select(PersonKey).where(PersonKey.person_id == person_id,
                                             PersonKey.revoked.is_(None)))


def _make(db: DB, person_id: int, serial: int, now: datetime, ssid: str) -> PersonKey:
    passphrase = store.new_wifi_key()
    key = PersonKey(person_id=person_id, serial=serial, passphrase=passphrase, ssid=ssid,
                    pmk=psk.pmk(passphrase, ssid).hex(), created=now)
    db.add(key)
    db.flush()
    return key


def _last_serial(db: DB, person_id: int) -> int:
    found = db.scalar(select(PersonKey.serial).where(PersonKey.person_id == person_id)
                      .order_by(PersonKey.serial.desc()).limit(1))
    return found or 0


def issue_if_missing(db: DB, person_id: int, now: datetime,
                     site_id: int | None = None) -> PersonKey:
    """The person's key, made now if they have none (their first check-in).
    Two check-ins racing to make it: the unique index lets one commit."""
    key = current(db, person_id)
    if key is None:
        key = _make(db, person_id, _last_serial(db, person_id) + 1, now,
                    private_ssid(db, site_id))
        log.info("personal key %d issued to person %d", key.serial, person_id)
    return key


def rotate(db: DB, person_id: int, now: datetime) -> PersonKey:
    """A new key for the person; the old one stops working at every site at
    the boxes' next pull, and the devices bound to it with it."""
    old = current(db, person_id)
    ssid = old.ssid if old is not None else private_ssid(db)
    serial = _last_serial(db, person_id) + 1
    if old is not None:
        old.revoked = now
        db.flush()
    key = _make(db, person_id, serial, now, ssid)
    log.info("personal key of person %d rotated: serial %d", person_id, serial)
    return key


def revoke(db: DB, person_id: int, now: datetime) -> PersonKey | None:
    """The person's key stops working; none is issued until their next
    check-in or a rotation. None when they had no key. Their live sessions
    are disconnected too (the Disconnect-Requests go out through the outbox):
    a revoked key must not keep anyone on."""
    old = current(db, person_id)
    if old is not None:
        old.revoked = now
        db.flush()
        log.info("personal key %d of person %d revoked", old.serial, person_id)
    reach.after_change(db, person_ids=[person_id], reason="key revoked", now=now)
    return old


def set_private_ssid(db: DB, network: Network, ssid: str) -> int:
    """A new private SSID for ``network``: the PMK of every key in force is
    derived again for it (the passphrases stay). Returns how many."""
    if not 1 <= len(ssid.encode()) <= 32:
        raise UserError(f"bad SSID {ssid!r}: 1 to 32 octets (IEEE 802.11)")
    network.private_ssid = ssid
    db.flush()
    count = 0
    for key in db.scalars(select(PersonKey).where(PersonKey.revoked.is_(None))):
        key.ssid, key.pmk = ssid, psk.pmk(key.passphrase, ssid).hex()
        count += 1
    db.flush()
    log.info("network %s: private SSID %r, %d PMKs derived again", network.name, ssid, count)
    return count


def forget(db: DB, person_id: int) -> None:
    """Every key of a person who is removed (SQLite may not cascade)."""
    for key in db.scalars(select(PersonKey).where(PersonKey.person_id == person_id)):
        db.delete(key)


OPENED_REMEMBERED = 16384  # opened keys a worker keeps (a few MB at most)


class Opened:
    """The Wi-Fi keys opened lately, by their sealed text: opening one
    (Fernet: an HMAC and an AES decryption) was a tenth of an accept's CPU,
    and a person checks in again and again with the same key.

    Bounded, the least recently used forgotten first. A rotated key is a new
    row with a new sealed text, so it is never answered from here; another
    server key (its file changed) empties the cache. Batches run in two
    threads: hence the lock."""

    def __init__(self, size: int = OPENED_REMEMBERED) -> None:
        self.size = size
        self._server_key = b""
        self._clear: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, sealed: str, server_key: bytes, fernet: Callable[[], Fernet]) -> str | None:
        """The clear key, or None when it does not open with ``server_key``
        (``fernet()`` gives that key ready to decrypt, made only on a miss)."""
        with self._lock:
            if server_key != self._server_key:
                self._clear.clear()
                self._server_key = server_key
            clear = self._clear.get(sealed)
            if clear is not None:
                self._clear.move_to_end(sealed)
                return clear
        clear = passwords.open_sealed(sealed, fernet())
        if clear is None:
            return None
        with self._lock:
            if server_key == self._server_key:
                self._clear[sealed] = clear
                if len(self._clear) > self.size:
                    self._clear.popitem(last=False)
        return clear


_OPENED = Opened()


class ForBatch:
    """The keys of the people of one batch of Access-Requests: read in one
    query, opened only for those accepted (or found among those opened
    lately, ``Opened``), issued for a first check-in."""

    def __init__(self, db: DB, person_ids: Iterable[int], now: datetime,
                 opened: Opened | None = None) -> None:
        self.db = db
        self.now = now
        self._opened = opened or _OPENED
        wanted = set(person_ids)
        # Sealed as stored: opened for the people accepted only (a
        # decryption each), not for every login of the batch.
        self._sealed: dict[int, str] = {}
        self._issued: dict[int, str] = {}  # made in this batch (first check-ins)
        # The server key read once a batch, not once an accept: reading its
        # file cost twice the decryption (about 80 of 110 us an accept).
        self._key_text: bytes | None = None
        self._key: Fernet | None = None
        if wanted:
            self._sealed = {int(p): str(k) for p, k in db.execute(
                select(PersonKey.person_id, type_coerce(PersonKey.passphrase, Text))
                .where(store.among(db, PersonKey.person_id, wanted),
                       PersonKey.revoked.is_(None)))}

    def passphrase(self, person_id: int, site_id: int) -> str:
        sealed = self._sealed.get(person_id)
        if sealed is not None:
            if self._key_text is None:
                self._key_text = passwords.server_key_text()
            clear = self._opened.open(sealed, self._key_text, self._fernet)
            if clear is None:
                raise UserError(f"the personal key of person {person_id} does not open with "
                                f"the server key {passwords.key_path()}")
            return clear
        issued = self._issued.get(person_id)
        if issued is None:
            issued = self._issued[person_id] = issue_if_missing(
                self.db, person_id, self.now, site_id).passphrase
        return issued

    def _fernet(self) -> Fernet:
        if self._key is None:
            assert self._key_text is not None
            self._key = Fernet(self._key_text)
        return self._key


# --- the boxes' pull ----------------------------------------------------------

@dataclass(frozen=True)
class Pull:
    """What a box receives: ``keys`` made after its cursor and allowed at
    its site, ``allowed`` every key id allowed there now with its VLAN, and
    ``cursor`` to send next time."""

    cursor: int
    ssid: str
    allowed: dict[int, int | None]
    keys: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "ssid": self.ssid,
                "allowed": {str(k): v for k, v in sorted(self.allowed.items())},
                "keys": self.keys}


def for_site(db: DB, site_id: int, since: int) -> Pull:
    """The keys a box of ``site_id`` holds, in the form above."""
    site = db.get(Site, site_id)
    if site is None:
        raise UserError(f"no site with id {site_id}")
    rows = db.execute(
        select(PersonKey.id.label("key_id"), Person.id, Person.login, Person.password_hash,
               Person.chap_secret, Person.active, Company.status, Company.payment,
               Company.categories, Company.services, Company.max_session,
               Company.bandwidth_up, Company.bandwidth_down, Company.vlan,
               Company.max_sessions, literal(0).label("balance"))
        .join(Person, Person.id == PersonKey.person_id)
        .join(Company, Company.id == Person.company_id)
        .where(PersonKey.revoked.is_(None))).all()
    allowed: dict[int, int | None] = {}
    logins: dict[int, str] = {}
    for row in rows:
        # The same standing the check-in policy asks for; the hour and the
        # credit are not the box's to judge for a device joining.
        if policy.standing(store._account(row).facts, site.category) is None:
            allowed[row.key_id] = row.vlan
            logins[row.key_id] = row.login
    cursor = max([since, *(row.key_id for row in rows)])
    fresh = [k for k in allowed if k > since]
    keys = []
    if fresh:
        for key in db.scalars(select(PersonKey).where(store.among(db, PersonKey.id, fresh))):
            keys.append({"id": key.id, "login": logins[key.id], "serial": key.serial,
                         "passphrase": key.passphrase, "ssid": key.ssid, "pmk": key.pmk})
    return Pull(cursor, private_ssid(db, site_id), allowed,
                sorted(keys, key=lambda k: int(k["id"])))


__all__ = ["ForBatch", "Opened", "Pull", "current", "for_site", "forget",
           "issue_if_missing", "private_ssid", "revoke", "rotate", "set_private_ssid"]


def in_force(db: DB, claims: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of the (person id, key id) pairs a box claims for a one-tap check-in,
    those where the key is that person's current, unrevoked key (one query)."""
    wanted = set(claims)
    if not wanted:
        return set()
    rows = db.execute(select(PersonKey.person_id, PersonKey.id).where(
        store.among(db, PersonKey.id, {key for _, key in wanted}),
        PersonKey.revoked.is_(None)))
    return {(int(person), int(key)) for person, key in rows} & wanted
