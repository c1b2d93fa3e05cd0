"""The box's copy of the personal Wi-Fi keys of the people allowed at its
site, pulled from the centre (portal/console/boxsync.py) every 30 s.

The pure part: ``signature`` (how a box signs a request: the centre checks
the same) and ``merge`` (a pull's document into the held keys). The
adapter, ``KeySync``: the signed HTTP call, and the keys kept on disk
encrypted with the box's own key file (Fernet), so the box answers its
access points from the first second after a restart, and while the centre
is unreachable. The MAC bindings the access points' server learns are kept
in the same file; a binding to a key no longer held (rotated, revoked) is
dropped when the file is read and when the key goes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import ssl
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger("passerelle.gateway")

H_GATEWAY = "X-Passerelle-Gateway"
H_TIME = "X-Passerelle-Time"
H_SIGNATURE = "X-Passerelle-Signature"
KEYS_PATH = "/box/v1/keys"
ROTATE_PATH = "/box/v1/rotate"
MAX_ANSWER = 64 * 1024 * 1024  # octets of a pull's answer read at most


def signature(secret: bytes, method: str, path: str, stamp: str, body: bytes) -> str:
    """HMAC-SHA256 of the request with the gateway's shared secret, in hex:
    method, path and time each on a line, then the body."""
    message = f"{method.upper()}\n{path}\n{stamp}\n".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PersonalKey:
    """One key the box holds; ``id`` is the centre's row id (a new one at
    each rotation)."""

    id: int
    login: str
    serial: int
    passphrase: str
    ssid: str
    pmk: str  # hex, for ``ssid``
    vlan: int | None = None

    def __repr__(self) -> str:  # never a key in a log line
        return f"PersonalKey({self.id}, {self.login!r}, serial={self.serial})"


@dataclass(frozen=True)
class Merged:
    keys: dict[int, PersonalKey]
    cursor: int
    added: int
    dropped: int
    missing: frozenset[int]  # allowed here but never received: pull everything again


class BadDocument(ValueError):
    """The centre's answer is not what a pull returns."""


def merge(held: Mapping[int, PersonalKey], document: Mapping[str, Any]) -> Merged:
    """The held keys after a pull: the new ones added, those no longer
    allowed here (rotated, revoked, the person's company or plan changed)
    dropped, each one's VLAN as the centre says now."""
    try:
        cursor = int(document["cursor"])
        allowed = {int(k): (None if v is None else int(v))
                   for k, v in dict(document["allowed"]).items()}
        fresh = {int(k["id"]): PersonalKey(int(k["id"]), str(k["login"]), int(k["serial"]),
                                           str(k["passphrase"]), str(k["ssid"]), str(k["pmk"]))
                 for k in list(document["keys"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise BadDocument(f"not a key pull: {exc!r}") from None
    keys = {}
    for key_id, vlan in allowed.items():
        key = fresh.get(key_id) or held.get(key_id)
        if key is not None:
            keys[key_id] = key if key.vlan == vlan else replace(key, vlan=vlan)
    return Merged(keys, cursor, len(set(fresh) - set(held)),
                  len(set(held) - set(allowed)), frozenset(set(allowed) - set(keys)))


def kept_bindings(bindings: Mapping[str, str], keys: Mapping[int, PersonalKey]) -> dict[str, str]:
    """The station -> key id bindings whose key is still held."""
    held = {str(k) for k in keys}
    return {mac: key_id for mac, key_id in bindings.items() if key_id in held}


# --- the adapter ------------------------------------------------------------------

def box_key(path: Path) -> Fernet:
    """The box's own key for the key file: made on first use, 0600 in a 0700 folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


class SyncError(Exception):
    """A pull or a rotation that did not happen; the message says why."""


class KeySync:
    """Pulls the keys, keeps them encrypted on disk, hands them out."""

    def __init__(self, url: str, identifier: str, secret: bytes, state: Path, key_file: Path,
                 *, timeout: float = 10.0, ca_file: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        self.identifier = identifier
        self.secret = secret
        self.path = state
        self.fernet = box_key(key_file)
        self.timeout = timeout
        self.ca_file = ca_file
        self.clock = clock
        self.cursor = 0
        # When the last pull that succeeded was asked: keys issued before it
        # are in it, if allowed here.
        self.pulled_at = float("-inf")
        self._keys: dict[int, PersonalKey] = {}
        # One more each time the held keys change (they are replaced, never
        # changed in place): whoever copies them knows when to copy again.
        self.generation = 0
        self.bindings: dict[str, str] = {}  # station MAC -> key id, from the AP server
        self._dirty = False  # bindings changed since the file was written
        self._lock = threading.Lock()
        # One pull at a time (the timer and a rotation): a slower, older pull
        # must not overwrite a newer one.
        self._pulling = threading.Lock()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)

    # the file

    def load(self) -> None:
        """The keys of the last run, if the file is there and opens."""
        try:
            sealed = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            data = json.loads(self.fernet.decrypt(sealed))
            keys = {int(k["id"]): PersonalKey(**k) for k in data["keys"]}
            cursor = int(data["cursor"])
            bindings = {str(m): str(k) for m, k in dict(data.get("bindings", {})).items()}
        except (InvalidToken, ValueError, KeyError, TypeError) as exc:
            log.warning("keys: %s does not open with the box key (%s); pulling everything "
                        "from the centre again", self.path, type(exc).__name__)
            return
        with self._lock:
            self._keys, self.cursor = keys, cursor
            self.generation += 1
            self.bindings = kept_bindings(bindings, keys)
        log.info("keys: %d personal keys and %d device bindings loaded from %s", len(keys),
                 len(self.bindings), self.path)

    def save(self) -> None:
        with self._lock:
            data = {"cursor": self.cursor, "bindings": self.bindings,
                    "keys": [k.__dict__ for k in self._keys.values()]}
        sealed = self.fernet.encrypt(json.dumps(data).encode())
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as f:
            f.write(sealed)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def keys(self) -> list[PersonalKey]:
        return self.held()[1]

    def held(self) -> tuple[int, list[PersonalKey]]:
        """The keys held and their ``generation``, read together."""
        with self._lock:
            return self.generation, list(self._keys.values())

    def of(self, login: str) -> PersonalKey | None:
        with self._lock:
            return next((k for k in self._keys.values() if k.login == login), None)

    def remember(self, bindings: Mapping[str, str]) -> None:
        """The AP server's bindings now, saved with the keys at the next sync."""
        with self._lock:
            kept = kept_bindings(bindings, self._keys)
            self._dirty = self._dirty or kept != self.bindings
            self.bindings = kept

    # the centre

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # A nonce: two equal requests in one second are not a replay.
        data = json.dumps({**body, "nonce": secrets.token_hex(8)}).encode()
        stamp = str(int(self.clock()))
        headers = {"Content-Type": "application/json", H_GATEWAY: self.identifier,
                   H_TIME: stamp,
                   H_SIGNATURE: signature(self.secret, "POST", path, stamp, data)}
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        context = None
        if self.url.startswith("https:"):
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file else None)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:
                answer = json.loads(resp.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            word = ""
            with contextlib.suppress(ValueError, AttributeError):
                word = str(json.loads(exc.read(4096)).get("error", ""))
            raise SyncError(f"the centre refused {path}: HTTP {exc.code} {word}".strip()) \
                from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SyncError(f"the centre {self.url} is unreachable: {reason}") from None
        except ValueError:
            raise SyncError(f"the centre's answer to {path} is not JSON") from None
        if not isinstance(answer, dict):
            raise SyncError(f"the centre's answer to {path} is not a JSON object")
        return answer

    def sync(self) -> Merged:
        """One pull (two when keys allowed here are missing: everything
        again); the file saved when something changed."""
        with self._pulling:
            return self._sync()

    def _sync(self) -> Merged:
        asked = self.clock()
        with self._lock:
            held, since = dict(self._keys), self.cursor
        merged = self._pull(held, since)
        if merged.missing:
            log.info("keys: %d keys allowed here were never received: pulling all",
                     len(merged.missing))
            merged = self._pull(held, 0)
        with self._lock:
            changed = merged.keys != self._keys or merged.cursor != self.cursor
            if changed:
                self._keys, self.cursor = merged.keys, merged.cursor
                self.generation += 1
            self.pulled_at = asked
            self.bindings = kept_bindings(self.bindings, self._keys)
            dirty, self._dirty = self._dirty, False
        if changed or dirty:
            self.save()
        if changed:
            log.info("keys: %d held (%d new, %d dropped), cursor %d", len(merged.keys),
                     merged.added, merged.dropped, merged.cursor)
        return merged

    def _pull(self, held: dict[int, PersonalKey], since: int) -> Merged:
        try:
            return merge(held, self._post(KEYS_PATH, {"since": since}))
        except BadDocument as exc:
            raise SyncError(f"the centre's key pull: {exc}") from None

    def rotate(self, login: str) -> PersonalKey:
        """A new key for ``login`` (checked in here), then a pull, so the
        access points take it at once."""
        answer = self._post(ROTATE_PATH, {"login": login})
        try:
            made = PersonalKey(0, str(answer["login"]), int(answer["serial"]),
                               str(answer["passphrase"]), str(answer["ssid"]), "")
        except (KeyError, TypeError, ValueError):
            raise SyncError("the centre's answer to a rotation is not a key") from None
        try:
            self.sync()
        except SyncError as exc:
            log.warning("keys: rotated for %s, but the pull after it failed: %s", login, exc)
        return made
