"""The way on to the page a person first asked for, and the checks on hosts.

When a captive client asks for ``http://example.org/news``, the portal sees
that request (DNAT-ed by the box) and sends the browser to the portal with
the original URL *signed*: after check-in the portal offers a link to that
URL and no other. A forged or altered token is ignored, so the portal is
never an open redirect. Only http(s) URLs of the Host the request carried.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer

MAX_URL = 2048
TOKEN_AGE = 3600  # seconds: a way on older than this is not offered

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = rf"(?:{_LABEL}\.)*{_LABEL}\.?"
_IPV6 = r"\[[0-9A-Fa-f:.]{2,45}\]"
_HOST = re.compile(rf"^(?:{_NAME}|{_IPV6})(?::[0-9]{{1,5}})?$")


def valid_host(host: str) -> bool:
    """A Host header a browser could have sent: a name or address and a port."""
    return len(host) <= 260 and bool(_HOST.match(host))


def is_local_path(path: str) -> bool:
    """A path on this site (for the language switcher's way back)."""
    return (path.startswith("/") and not path.startswith("//") and "\\" not in path
            and len(path) <= MAX_URL and all(32 < ord(c) < 127 for c in path))


def original_url(host: str, full_path: str, scheme: str = "http") -> str | None:
    """The URL the client asked for, or None when it cannot be offered back."""
    if not valid_host(host) or not full_path.startswith("/"):
        return None
    url = f"{scheme}://{host}{full_path.rstrip('?')}"
    if len(url) > MAX_URL or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return None
    return url


def _serializer(secret: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="passerelle.portal.way-on")


def sign(secret: bytes, url: str) -> str:
    return _serializer(secret).dumps(url)


def unsign(secret: bytes, token: str | None, max_age: int = TOKEN_AGE) -> str | None:
    """The URL in a token this portal signed, checked again; None otherwise."""
    if not token or len(token) > 4 * MAX_URL:
        return None
    try:
        url = _serializer(secret).loads(token, max_age=max_age)
    except BadData:
        return None
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    if not valid_host(parts.netloc):
        return None
    return url
