"""Sends gateway/ra.py's router advertisements on the LAN, one thread.

A raw ICMPv6 socket bound to the LAN interface that lets only Router
Solicitations in. Unsolicited advertisements go out at start and then at
the intervals ``ra.interval`` gives; a solicitation is answered by one
multicast advertisement (``ra.answer_at``); stopping sends a last one with
router lifetime 0 (RFC 4861 6.2.5), so the clients stop routing through a
box that is going away. All go from the box's link-local address (the
kernel picks it for ff02::1) with hop limit 255. The MAC, MTU and hop limit
are read from the interface at each send.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import socket
import struct
import threading
import time
from pathlib import Path

from . import ra

log = logging.getLogger("passerelle.gateway")

ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
_ICMP6_FILTER = 1  # linux/icmpv6.h; the socket module does not name it


def _only(kind: int) -> bytes:
    """An ICMP6_FILTER that blocks every ICMPv6 type but ``kind``."""
    words = [0xFFFFFFFF] * 8
    words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


class RouterAdvertiser:
    def __init__(self, lan_if: str, advert: ra.Advert, poll: float = 0.5) -> None:
        self.lan_if = lan_if
        self.advert = advert  # without the interface's MAC, MTU and hop limit
        self.poll = poll  # how soon stop() is noticed
        self.sent = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self, router_lifetime: int = ra.ROUTER_LIFETIME) -> ra.Advert:
        """The advertisement with what the interface has now."""
        net = f"/sys/class/net/{self.lan_if}"
        mtu = _read(f"{net}/mtu")
        hops = _read(f"/proc/sys/net/ipv6/conf/{self.lan_if}/hop_limit")
        return dataclasses.replace(
            self.advert, lladdr=_read(f"{net}/address") or "",
            mtu=int(mtu) if mtu and mtu.isdigit() else None,
            hop_limit=int(hops) if hops and hops.isdigit() else self.advert.hop_limit,
            router_lifetime=router_lifetime)

    def start(self) -> None:
        """Open the socket (OSError if it cannot) and start advertising."""
        ra.build(self.advert)  # a ValueError now rather than in the thread
        index = socket.if_nametoindex(self.lan_if)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.lan_if.encode())
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, _only(ra.ROUTER_SOLICITATION))
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ra.ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ra.ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            # Solicitations go to all-routers; a forwarding interface is in it
            # already, joining again costs nothing.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                            socket.inet_pton(socket.AF_INET6, ALL_ROUTERS)
                            + struct.pack("@I", index))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sock, index),
                                        name="ra-sender", daemon=True)
        self._thread.start()
        log.info("router advertisements on %s: prefix %s, portal API %s", self.lan_if,
                 self.advert.prefix, self.advert.captive_url or "(none)")

    def stop(self) -> None:
        """Stop, after a last advertisement with router lifetime 0."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        sock, self._sock = self._sock, None
        if sock is not None:
            self._send(sock, socket.if_nametoindex(self.lan_if), router_lifetime=0)
            sock.close()

    def _send(self, sock: socket.socket, index: int,
              router_lifetime: int = ra.ROUTER_LIFETIME) -> None:
        try:
            sock.sendto(ra.build(self.current(router_lifetime)), (ALL_NODES, 0, 0, index))
            self.sent += 1
        except OSError as exc:  # a LAN link down: the next one may go
            log.warning("router advertisement on %s not sent: %s", self.lan_if, exc)

    def _run(self, sock: socket.socket, index: int) -> None:
        rng = random.Random()
        unsolicited = time.monotonic()
        answer = math.inf
        last = -math.inf
        space = socket.CMSG_SPACE(struct.calcsize("@i"))
        while not self._stop.is_set():
            now = time.monotonic()
            due = min(unsolicited, answer)
            if now >= due:
                self._send(sock, index)
                last, answer = now, math.inf
                unsolicited = now + ra.interval(self.sent, rng)
                continue
            sock.settimeout(min(due - now, self.poll))
            try:
                message, ancillary, _flags, _addr = sock.recvmsg(1500, space)
            except TimeoutError:
                continue
            except OSError as exc:
                log.warning("router solicitations on %s: %s", self.lan_if, exc)
                self._stop.wait(self.poll)
                continue
            hops = next((struct.unpack("@i", data[:4])[0] for level, kind, data in ancillary
                         if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT), -1)
            if ra.is_solicitation(message, hops) and answer == math.inf:
                answer = ra.answer_at(time.monotonic(), last, rng)
