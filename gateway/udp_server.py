"""One UDP socket served by one thread: the box's RFC 5176 server and its
access points' RADIUS server both sit on it.

Each datagram goes to ``answer`` and its reply, if any, back to the sender.
The loop is the boundary: a failure answering one datagram is logged and
the next one is served. ``tick`` runs between datagrams (at least every
``poll`` seconds), for work such as taking new keys.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from passerelle.radius.codec import MAX_LENGTH

log = logging.getLogger("passerelle.gateway")

Answer = Callable[[bytes, tuple[str, int]], bytes | None]


class UdpServer:
    def __init__(self, name: str, listen: str, port: int, answer: Answer, *,
                 tick: Callable[[], None] | None = None, poll: float = 0.2) -> None:
        self.name = name
        self.listen = listen
        self.port = port
        self.answer = answer
        self.tick = tick
        self.poll = poll  # how soon stop() (and the tick) are noticed
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind (OSError if the port is taken) and serve; the bound port."""
        family = socket.AF_INET6 if ":" in self.listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.listen, self.port))
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.poll)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sock,),
                                        name=f"{self.name}-server", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            if self.tick is not None:
                self.tick()
            try:
                data, addr = sock.recvfrom(MAX_LENGTH + 1)
            except TimeoutError:
                continue
            except OSError as exc:
                log.warning("%s: receive failed: %s", self.name, exc)
                continue
            try:
                reply = self.answer(data, (addr[0], addr[1]))
            except Exception:  # the packet loop is the boundary: log, keep serving
                log.exception("%s: request from %s:%d failed; not answered", self.name,
                              addr[0], addr[1])
                continue
            if reply is not None:
                try:
                    sock.sendto(reply, addr)
                except OSError as exc:
                    log.warning("%s: cannot answer %s:%d: %s", self.name, addr[0], addr[1], exc)
