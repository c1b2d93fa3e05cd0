"""Password hashing (argon2), and the secrets the centre must read back.

PAP lets the server verify a password against an argon2 hash. CHAP cannot:
the server needs the cleartext to compute MD5(Id|password|challenge). For the
people whose company needs CHAP, the password is also kept sealed with the
server key (Fernet: AES-128-CBC + HMAC-SHA256), never in clear. The RADIUS
shared secrets of the gateways are sealed the same way (``seal``), so that a
leaked database or backup opens no site without the key file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from .db import data_dir

# Moderate cost: a RADIUS worker verifies many passwords per second; argon2id
# at 19 MiB / 2 passes is the OWASP minimum recommendation.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


_DUMMY_HASH = _hasher.hash("a password no one has")


def spend_verification(password: str) -> None:
    """The work of a failed verification, for a login that does not exist:
    an unknown login must not answer faster than a wrong password."""
    verify_password(_DUMMY_HASH, password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def key_path() -> Path:
    return Path(os.environ.get("PASSERELLE_KEY_FILE") or data_dir() / "server.key")


def server_key() -> Fernet:
    """The key that encrypts CHAP secrets; made on first use, mode 0600.

    Every central RADIUS host must share it (copy the file or set
    ``PASSERELLE_KEY_FILE``)."""
    return Fernet(server_key_text())


def server_key_text() -> bytes:
    """The server key as its file holds it (made on first use): what
    server_key() opens, and what tells one key from another."""
    path = key_path()
    if not path.exists():
        # Only its owner may list the directory beside the key (0700).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    return path.read_bytes().strip()


def seal(clear: str, key: Fernet | None = None) -> str:
    """``clear`` encrypted and authenticated with the server key, as text."""
    return (key or server_key()).encrypt(clear.encode()).decode()


def open_sealed(sealed: str, key: Fernet | None = None) -> str | None:
    """The cleartext, or None when the key does not fit (a wrong key file)."""
    try:
        return (key or server_key()).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


# The names the CHAP code reads best with: the same functions.
seal_chap_secret = seal
open_chap_secret = open_sealed
