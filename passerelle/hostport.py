"""``ADDRESS:PORT`` as an operator writes a listener (``127.0.0.1:9464``,
``[::1]:9464``): one reading for every part."""

from __future__ import annotations

import ipaddress


def parse(text: str, *, low: int = 1) -> tuple[str, int]:
    """(address, port); ValueError saying what is wrong. The address is an
    IP address, never a name (a listener binds before any look-up)."""
    host, sep, port_text = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    try:
        # An IPv6 address in brackets: ::1:9464 could be an address alone.
        if not sep or not port_text.isdigit() or (":" in host) != bracketed:
            raise ValueError
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not ADDRESS:PORT with an IP address (e.g. "
                         "127.0.0.1:9464, [::1]:9464)") from None
    port = int(port_text)
    if not low <= port <= 65535:
        raise ValueError(f"port {port} is not between {low} and 65535")
    return str(addr), port
