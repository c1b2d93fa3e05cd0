"""The UDP adapter of the RADIUS server: asyncio sockets around Handler.

Each worker process binds the authentication and accounting ports with
SO_REUSEPORT, so the kernel spreads clients over the workers (and keeps one
client's retransmissions on the same worker, where its duplicate cache is).
A worker collects what arrived, hands the batch to the Handler, and sends
the replies once the batch is committed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import cast

from . import dae, db
from .handler import ACCT, AUTH, Cut, Datagram, Handler, HandlerSettings

log = logging.getLogger("passerelle.radius")

MAX_BATCH = 256


@dataclass(frozen=True)
class ServerConfig:
    db_url: str
    listen: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    workers: int = 1
    settings: HandlerSettings = field(default_factory=HandlerSettings)


def bind_udp(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Room for bursts while a batch is being committed.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, worker: Worker, port: str) -> None:
        self.worker = worker
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.worker.received(Datagram(data, (addr[0], addr[1]), self.port))

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error on %s port: %s", self.port, exc)


class Worker:
    """One process's event loop: receive, batch, process, reply."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.pending: list[Datagram] = []
        self.endpoints: dict[str, _Endpoint] = {}
        self._scheduled = False
        self._dae_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dae")

    def received(self, dgram: Datagram) -> None:
        self.pending.append(dgram)
        if not self._scheduled:
            self._scheduled = True
            # Let the loop drain every readable datagram first: one batch, one commit.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        if self.pending:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            replies, cuts = self.handler.process(batch)
        except Exception:
            # Our bug, not the peers': log it and keep serving.
            log.exception("batch of %d datagrams failed", len(batch))
            return
        for reply in replies:
            endpoint = self.endpoints[reply.port]
            if endpoint.transport is not None:
                endpoint.transport.sendto(reply.data, reply.addr)
        for cut in cuts:
            self._dae_pool.submit(_send_cut, cut)

    async def run(self, auth: socket.socket, acct: socket.socket,
                  stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        for name, sock in ((AUTH, auth), (ACCT, acct)):
            endpoint = _Endpoint(self, name)
            await loop.create_datagram_endpoint(_factory(endpoint), sock=sock)
            self.endpoints[name] = endpoint
        self.handler.refresh_gateways()
        await stop.wait()
        for endpoint in self.endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._dae_pool.shutdown(wait=True, cancel_futures=False)


def _factory(endpoint: _Endpoint) -> Callable[[], _Endpoint]:
    return lambda: endpoint


def _send_cut(cut: Cut) -> None:
    target = dae.Target(cut.nas.ip, cut.nas.coa_port, cut.nas.secret)
    result = dae.disconnect(target, cut.attributes)
    log.info("Disconnect-Request to %s for %s: %s", cut.nas.identifier,
             cut.attributes.get("Acct-Session-Id"), result)


def _worker_main(config: ServerConfig, auth_port: int, acct_port: int,
                 ready: Connection | None) -> None:
    from passerelle.cli import setup_logging

    if ready is not None:
        setup_logging(verbose=False)
    engine = db.make_engine(config.db_url, pool_size=2, max_overflow=2) \
        if not config.db_url.startswith("sqlite") else db.make_engine(config.db_url)
    # Without autoflush the log lines of a batch go to the database in one
    # multi-row INSERT at commit; store.py flushes where it must read back.
    handler = Handler(db.make_sessionmaker(engine, autoflush=False), config.settings)
    reuse = config.workers > 1
    auth = bind_udp(config.listen, auth_port, reuse)
    acct = bind_udp(config.listen, acct_port, reuse)
    if ready is None:
        _announce(config, auth.getsockname()[1], acct.getsockname()[1])

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(Worker(handler).run(auth, acct, stop))
        await asyncio.sleep(0)
        if ready is not None:
            ready.send(os.getpid())
            ready.close()
        await task

    try:
        asyncio.run(main())
    finally:
        engine.dispose()


def serve(config: ServerConfig) -> None:
    """Run the server until SIGTERM/SIGINT, with ``config.workers`` processes."""
    if config.workers <= 1:
        _worker_main(config, config.auth_port, config.acct_port, None)
        return
    # Reserve the ports (port 0 means "any": all workers must share one).
    holders = [bind_udp(config.listen, config.auth_port, True),
               bind_udp(config.listen, config.acct_port, True)]
    auth_port, acct_port = (s.getsockname()[1] for s in holders)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for _ in range(config.workers):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_main, args=(config, auth_port, acct_port, child),
                           daemon=True)
        proc.start()
        child.close()
        parent.recv()
        procs.append(proc)
    for sock in holders:
        sock.close()
    _announce(config, auth_port, acct_port)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for proc in procs:
        proc.join()
    if not stopping:
        log.error("a worker exited; stopping")


def _announce(config: ServerConfig, auth_port: int, acct_port: int) -> None:
    # Tests and scripts wait for this line (stdout, flushed) before sending.
    print(f"passerelle radius: listening on {config.listen} auth {auth_port} "
          f"acct {acct_port} workers {max(1, config.workers)}", flush=True)
