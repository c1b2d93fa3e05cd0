"""The operating systems' connectivity probes (docs/portal.md, "OS probes").

An OS fetches a known URL over plain HTTP and compares the answer with the
one it expects (Apple's captive network assistant, Android's NetworkMonitor,
Chromium's captive portal detector, Windows' NCSI, Firefox's captive-portal
service); any other answer means "captive". Before check-in a probe is sent
to the portal (the OS then opens its login window); once the client has a
session, the probe gets exactly the answer its OS expects, so the OS closes
that window and says "connected". The portal still sees probes after
check-in: a kept-alive connection opened while the client was captive stays
DNAT-ed to the portal by conntrack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeReply:
    status: int
    body: bytes
    content_type: str


APPLE = ProbeReply(200, b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
               "text/html")
NO_CONTENT = ProbeReply(204, b"", "text/plain")
MICROSOFT = ProbeReply(200, b"Microsoft Connect Test", "text/plain")
NCSI = ProbeReply(200, b"Microsoft NCSI", "text/plain")
FIREFOX_CANONICAL = ProbeReply(
    200, b'<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/'
         b'captive-portal"/>', "text/html")
FIREFOX_SUCCESS = ProbeReply(200, b"success\n", "text/plain")

# (host, path) -> the online answer; hosts in lower case, without port.
PROBES: dict[tuple[str, str], ProbeReply] = {
    ("captive.apple.com", "/hotspot-detect.html"): APPLE,
    ("captive.apple.com", "/"): APPLE,
    ("www.apple.com", "/library/test/success.html"): APPLE,
    ("connectivitycheck.gstatic.com", "/generate_204"): NO_CONTENT,
    ("connectivitycheck.android.com", "/generate_204"): NO_CONTENT,
    ("www.google.com", "/gen_204"): NO_CONTENT,
    ("play.googleapis.com", "/generate_204"): NO_CONTENT,
    ("clients1.google.com", "/generate_204"): NO_CONTENT,
    ("clients3.google.com", "/generate_204"): NO_CONTENT,
    ("www.gstatic.com", "/generate_204"): NO_CONTENT,
    ("www.msftconnecttest.com", "/connecttest.txt"): MICROSOFT,
    ("www.msftncsi.com", "/ncsi.txt"): NCSI,
    ("detectportal.firefox.com", "/canonical.html"): FIREFOX_CANONICAL,
    ("detectportal.firefox.com", "/success.txt"): FIREFOX_SUCCESS,
}


def host_name(host: str) -> str:
    """``Host`` header -> bare lower-case name: no port, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def probe(host: str, path: str) -> ProbeReply | None:
    """The online answer if (``host``, ``path``) is a known probe, else None."""
    return PROBES.get((host_name(host), path))
