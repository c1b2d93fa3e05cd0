"""The UDP adapter of the RADIUS server: asyncio sockets around Handler.

Each worker process binds the authentication and accounting ports with
SO_REUSEPORT, so the kernel spreads clients over the workers (and keeps one
client's retransmissions on the same worker, where its duplicate cache is).
A worker collects what arrived, hands the batch to the Handler, and sends
the replies once the batch is committed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine, event

from passerelle import systemd

from . import dae, db, metrics, radsec, reach
from .handler import ACCT, AUTH, Batch, Datagram, Handler, HandlerSettings

log = logging.getLogger("passerelle.radius")

MAX_BATCH = 256
# A batch's transaction is idle only for milliseconds between its statements.
# One idle for longer belongs to a node that hangs (stopped, swapped out)
# mid-batch: PostgreSQL ends it, so that its row locks do not hold up the
# other node, to which the boxes resend the same records (docs/radsec.md).
IDLE_IN_TRANSACTION = "10s"
# How long a batch runs alone before the next may start beside it (see Worker).
SLOW_BATCH = 0.05


@dataclass(frozen=True)
class ServerConfig:
    db_url: str
    listen: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    workers: int = 1
    # Batches a worker has at the database at once (see Worker).
    db_threads: int = 2
    settings: HandlerSettings = field(default_factory=HandlerSettings)
    # RadSec (radsec.py): the TLS port (None: no TLS) and the names boxes reach us by.
    radsec_port: int | None = None
    radsec_names: tuple[str, ...] = ()
    # The Prometheus listener (metrics.py), in the main process; None: none.
    metrics_listen: tuple[str, int] | None = None


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


class Worker:
    """One process's event loop: receive, batch, process, reply.

    The worker reads its sockets itself rather than through asyncio's
    datagram transport, which hands over one datagram per socket per loop
    turn: that made batches of one or two requests, and a database round
    trip for each. Here every readable datagram (up to MAX_BATCH) joins the
    batch, so under load one commit serves everything that arrived while
    the previous batch was being processed.

    A batch's database work runs in one of ``threads`` threads. While one
    batch runs the worker stops reading: what arrives waits in the socket
    buffer and joins the next batch, so a batch's fixed cost (about a
    millisecond of this process's CPU and one of PostgreSQL's: the
    transaction, its statements, the commit) is shared by more requests.
    A batch lets the next one start beside it, up to ``threads``, when it
    reaches its commit (the commit waits for PostgreSQL to write the WAL to
    disk, about a millisecond of a 10 ms batch cycle here, in which this
    process would otherwise sit idle; the reply still waits for the commit),
    or when it is still running after ``SLOW_BATCH`` seconds (argon2 checks
    of people not seen lately, a slow database): one slow batch does not
    hold up the rest."""

    def __init__(self, handler: Handler, threads: int = 2) -> None:
        self.handler = handler
        self.threads = max(1, threads)
        self.sockets: dict[str, socket.socket] = {}
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="batch")
        self._running = 0
        self._reading = False
        self._stopping = False
        # The batches running that are not slow yet (by id()), each with the
        # timer that says when it is: while there is one, nothing is read.
        self._busy: dict[int, asyncio.TimerHandle] = {}
        # RadSec connections' writers by the address their Datagrams carry.
        self.streams: dict[tuple[str, int], Callable[[bytes], None]] = {}

    def _drain(self) -> list[Datagram]:
        batch: list[Datagram] = []
        # Round robin, so a flood on one port cannot starve the other.
        live = list(self.sockets.items())
        while live and len(batch) < MAX_BATCH:
            for name, sock in list(live):
                try:
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    live.remove((name, sock))
                    continue
                except OSError as exc:
                    # An ICMP error from an earlier reply; nothing to read here.
                    log.debug("socket error on %s port: %s", name, exc)
                    live.remove((name, sock))
                    continue
                batch.append(Datagram(data, (addr[0], addr[1]), name))
        return batch

    def _listen(self, on: bool) -> None:
        if on == self._reading:
            return
        loop = asyncio.get_running_loop()
        for sock in self.sockets.values():
            if on:
                # Level-triggered: what one turn leaves unread wakes the next.
                loop.add_reader(sock.fileno(), self.readable)
            else:
                loop.remove_reader(sock.fileno())
        self._reading = on

    def readable(self) -> None:
        self.take(self._drain())

    def take(self, batch: list[Datagram]) -> None:
        """Datagrams, or RadSec packets (radsec.py), through the batch path."""
        if not batch:
            return
        try:
            admitted = self.handler.admit(batch)
        except Exception:
            # Our bug, not the peers': log it and keep serving.
            log.exception("batch of %d datagrams failed", len(batch))
            return
        if not admitted.work:
            self._finish(admitted)
            return
        self._running += 1
        loop = asyncio.get_running_loop()
        key = id(admitted)
        self._busy[key] = loop.call_later(SLOW_BATCH, self._release, key)
        self._update_listening()

        def committing() -> None:  # in the batch's thread
            loop.call_soon_threadsafe(self._release, key)

        future = loop.run_in_executor(self._pool, self.handler.run, admitted, committing)
        future.add_done_callback(lambda done: self._ran(admitted, done))

    def _release(self, key: int) -> None:
        # That batch is slow, or committing (its thread, just before the
        # commit): the next may start beside it.
        timer = self._busy.pop(key, None)
        if timer is not None:
            timer.cancel()  # nothing when it is the timer that fired
            self._update_listening()

    def _update_listening(self) -> None:
        self._listen(not self._stopping and not self._busy and self._running < self.threads)

    def _ran(self, admitted: Batch, done: asyncio.Future[None]) -> None:
        self._running -= 1
        timer = self._busy.pop(id(admitted), None)
        if timer is not None:
            timer.cancel()
        self._update_listening()
        if not done.cancelled() and done.exception() is not None:
            log.error("batch of %d requests failed", len(admitted.work),
                      exc_info=done.exception())
        self._finish(admitted)

    def _finish(self, admitted: Batch) -> None:
        try:
            replies, cuts = self.handler.finish(admitted)
        except Exception:
            log.exception("batch of %d requests failed", len(admitted.work))
            return
        for reply in replies:
            stream = self.streams.get(reply.addr)
            if stream is not None:  # a RadSec connection's
                stream(reply.data)
                continue
            try:
                self.sockets[reply.port].sendto(reply.data, reply.addr)
            except OSError as exc:
                # The client retransmits; a full socket buffer must not stop the loop.
                log.warning("reply to %s:%d not sent: %s", *reply.addr, exc)
        # The cuts are in the outbox (committed with the batch): the courier sends them.
        del cuts

    async def run(self, auth: socket.socket, acct: socket.socket,
                  stop: asyncio.Event) -> None:
        self.sockets = {AUTH: auth, ACCT: acct}
        self.handler.refresh_gateways()
        self._listen(True)
        await stop.wait()
        self._stopping = True
        self._listen(False)
        # Let the batches in flight commit and answer before closing.
        for _ in range(1000):
            if not self._running:
                break
            await asyncio.sleep(0.01)
        for sock in self.sockets.values():
            sock.close()
        self._pool.shutdown(wait=True, cancel_futures=False)


def make_engine(url: str, threads: int = 2) -> Engine:
    """The engine of a worker: a connection per batch thread (and one for
    the gateways' reload), and on PostgreSQL plans made once, by index, and
    no transaction left idle for long (IDLE_IN_TRANSACTION)."""
    if url.startswith("sqlite"):
        return db.make_engine(url)
    engine = db.make_engine(url, pool_size=threads + 1, max_overflow=2)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _plans_once_by_index)
    return engine


def _plans_once_by_index(dbapi_connection: Any, _record: Any) -> None:
    # The worker runs the same few statements for ever (psycopg prepares
    # them after five runs). Generic plans: each is planned once per
    # connection instead of for every batch (planning was 44 % of
    # PostgreSQL's CPU for a batch of one, and about 0.7 ms a batch:
    # docs/benchmarks.md). A plan made once must not depend on how big the
    # tables were at that moment: every statement of the hot path finds its
    # rows by an index, and with enable_seqscan off a sequential scan is
    # only taken where there is none. (With it on, plans cached while the
    # tables were small or never analysed read radacct whole for every
    # batch, until autovacuum's ANALYZE replanned.)
    with dbapi_connection.cursor() as cur:
        cur.execute("SET enable_seqscan TO off")
        cur.execute("SET plan_cache_mode TO force_generic_plan")
        cur.execute(f"SET idle_in_transaction_session_timeout TO '{IDLE_IN_TRANSACTION}'")
    dbapi_connection.commit()


def _worker_main(config: ServerConfig, auth_port: int, acct_port: int,
                 ready: Connection | None) -> None:
    from passerelle.cli import setup_logging

    if ready is not None:
        setup_logging(verbose=False)
    engine = make_engine(config.db_url, config.db_threads)
    # Without autoflush the log lines of a batch go to the database in one
    # multi-row INSERT at commit; store.py flushes where it must read back.
    handler = Handler(db.make_sessionmaker(engine, autoflush=False), config.settings)
    # The outbox of Disconnect- and CoA-Requests, sent until answered (reach.py).
    courier = reach.Courier(db.make_sessionmaker(engine))
    courier.start()
    reuse = config.workers > 1
    auth = bind_udp(config.listen, auth_port, reuse)
    acct = bind_udp(config.listen, acct_port, reuse)
    tls = radsec.server_context(handler.factory, list(config.radsec_names or
                                                     (config.listen,))) \
        if config.radsec_port is not None else None
    tls_sock = radsec.bind(config.listen, config.radsec_port, reuse) \
        if config.radsec_port is not None else None
    # The gateways (and a first database connection) before saying "ready":
    # a request that arrives just after the announcement is answered at
    # once, not after a connection to PostgreSQL is made under load.
    handler.refresh_gateways()
    # What start-up made (modules, dictionaries, the models' metadata: about
    # 100,000 objects) lives as long as the process: out of the collector's
    # way, so that its full collections, which stopped the worker for about
    # 100 ms each, scan only what serving makes (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    if ready is None:
        _announce(config, auth.getsockname()[1], acct.getsockname()[1],
                  tls_sock.getsockname()[1] if tls_sock is not None else None)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(handler, config.db_threads)
        tls_task = _radsec_listener(worker, handler, tls, tls_sock) \
            if tls is not None and tls_sock is not None else None
        task = asyncio.create_task(worker.run(auth, acct, stop))
        await asyncio.sleep(0)
        if ready is not None:
            ready.send(os.getpid())
            ready.close()
        await task
        if tls_task is not None:
            tls_task.cancel()
            await asyncio.gather(tls_task, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        courier.stop()
        engine.dispose()


def _radsec_listener(worker: Worker, handler: Handler, context: ssl.SSLContext,
                     sock: socket.socket) -> asyncio.Task[None]:
    """RadSec in this worker: its packets join the worker's batches, and
    Disconnects go over a box's reverse connection when it has one."""
    reverse = radsec.ReversePaths(asyncio.get_running_loop())
    dae.use_reverse_paths(reverse)
    listener = radsec.RadSecListener(handler.factory, context, lambda: handler.gateways,
                               worker.take, worker.streams, reverse,
                               lambda: handler.refresh_gateways(force=True))
    return asyncio.create_task(listener.serve(sock))


def _make_authority(url: str) -> None:
    """The CA once, before the workers each sign their TLS certificate with it
    (two workers finding none would make two)."""
    engine = db.make_engine(url)
    try:
        radsec.server_context(db.make_sessionmaker(engine), ["localhost"])
    finally:
        engine.dispose()


def _warn_if_not_durable(url: str) -> None:
    """A reply acknowledges a commit: say so at start when the database
    could lose a committed record on power failure."""
    engine = db.make_engine(url)
    try:
        for problem in db.durability_problems(engine):
            log.warning("%s", problem)
    finally:
        engine.dispose()


def serve(config: ServerConfig) -> None:
    """Run the server until SIGTERM/SIGINT, with ``config.workers`` processes."""
    exporter = _exporter(config)
    try:
        _serve(config)
    finally:
        if exporter is not None:
            exporter.stop()


def _exporter(config: ServerConfig) -> metrics.Exporter | None:
    """The metrics listener, started before the workers (they inherit where
    their counters go)."""
    if config.metrics_listen is None:
        return None
    engine = db.make_engine(config.db_url, pool_size=1, max_overflow=1) \
        if not config.db_url.startswith("sqlite") else db.make_engine(config.db_url)
    exporter = metrics.Exporter(config.metrics_listen, db.make_sessionmaker(engine),
                                config.settings.policy.interim_interval)
    exporter.prepare(config.workers)
    exporter.start()
    return exporter


def _serve(config: ServerConfig) -> None:
    _warn_if_not_durable(config.db_url)
    if config.radsec_port is not None:
        _make_authority(config.db_url)
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


def _announce(config: ServerConfig, auth_port: int, acct_port: int,
              radsec_port: int | None = None) -> None:
    # Tests and scripts wait for this line (stdout, flushed) before sending.
    tls = f" radsec {radsec_port}" if radsec_port is not None else ""
    print(f"passerelle radius: listening on {config.listen} auth {auth_port} "
          f"acct {acct_port} workers {max(1, config.workers)}{tls}", flush=True)
    systemd.notify(f"READY=1\nSTATUS=auth {auth_port} acct {acct_port}")
