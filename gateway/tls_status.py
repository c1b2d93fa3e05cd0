"""Status-Server (RFC 5997) to a centre over TLS, with the box's certificate.

radsecproxy answers a Status-Server from the box itself, whether or not any
centre is reachable, so what must reach the centres (the heartbeat, doctor's
probe) goes on a short connection of its own, as radsecproxy's would: RFC
6614, secret "radsec", and without the reverse CoA ALPN name, so the centre
does not take it for the box's reverse path.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from passerelle.radius import messages as m
from passerelle.radius.codec import Drop
from passerelle.radius.dae import RADSEC_SECRET
from passerelle.radius.radsec import BadLength, Framer

from .radclient import NasIdentity
from .radsecproxy import Centre
from .reverse_coa import Credentials

log = logging.getLogger("passerelle.gateway")


def ask(host: str, port: int, credentials: Credentials, request: m.StatusServer,
        timeout: float) -> str | None:
    """Send ``request`` to ``host``:``port`` over TLS: None when answered,
    else why not, in words a technician can act on."""
    try:
        context = credentials.context(reverse=False)
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load the box's certificate, key or CA ({exc})"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return f"no TCP connection to port {port} ({exc.strerror or exc})"
    sent = request.encode(RADSEC_SECRET)
    try:
        with context.wrap_socket(raw, server_hostname=host) as conn:
            conn.settimeout(timeout)
            conn.sendall(sent)
            framer = Framer()
            while not (got := framer.feed(data := conn.recv(4096))):
                if not data:
                    return ("the centre closed the connection: it does not take the box's "
                            "certificate (revoked, or from another centre)")
            m.decode_reply(got[0], RADSEC_SECRET, sent)
    except ssl.SSLCertVerificationError as exc:
        return (f"the centre's certificate does not check out ({exc.verify_message}): "
                f"the box holds another centre's CA, or the clock is wrong")
    except ssl.SSLError as exc:
        return f"the centre refused the TLS connection ({exc.reason or exc})"
    except TimeoutError:
        return "no answer to Status-Server over TLS"
    except (OSError, Drop, BadLength) as exc:
        return f"the TLS connection failed ({exc})"
    finally:
        raw.close()
    return None


class TlsStatus:
    """The heartbeat's Status-Server to every centre over TLS (RadSec boxes),
    in place of ``RadiusClient.status`` through radsecproxy."""

    def __init__(self, centres: Sequence[Centre], credentials: Credentials, nas: NasIdentity,
                 timeout: float = 2.0) -> None:
        self.centres = tuple(centres)
        self.credentials = credentials
        self.nas = nas
        self.timeout = timeout

    def status(self, attributes: dict[str, Any]) -> int:
        """How many centres answered."""
        answered = 0
        for centre in self.centres:
            request = m.StatusServer.of(attributes, nas_identifier=self.nas.identifier,
                                        nas_ip_address=self.nas.ipv4)
            why = ask(centre.host, centre.port, self.credentials, request, self.timeout)
            if why is None:
                answered += 1
            else:
                log.info("centre %s:%d did not answer a Status-Server over TLS: %s",
                         centre.host, centre.port, why)
        return answered
