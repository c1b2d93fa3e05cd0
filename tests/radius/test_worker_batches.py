"""How the worker (server.Worker) forms batches from its UDP sockets: while
a batch runs, what arrives waits and makes the next batch bigger; only a
batch that reaches its commit, or is still running after SLOW_BATCH, lets
the next one start beside it.

The handler here records the batches and blocks in ``run`` until told:
what is tested is the worker's scheduling over real sockets on loopback,
not the RADIUS work (tested with the real Handler elsewhere)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import pytest

from passerelle.radius import server
from passerelle.radius.handler import Batch, Datagram, Handler, Reply


class Recorder:
    """Handler's three steps as the worker calls them; ``run`` waits for
    ``release`` so a test decides how long a batch takes."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.release = threading.Event()
        # A batch whose first datagram is a key here waits for that event.
        self.gates: dict[bytes, threading.Event] = {}
        # A batch whose first datagram is here reaches its commit at once.
        self.committing: set[bytes] = set()
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def refresh_gateways(self, force: bool = False) -> None:
        pass

    def admit(self, batch: list[Datagram]) -> Batch:
        self.batches.append([d.data for d in batch])
        admitted = Batch(time.time())
        admitted.work = cast(Any, list(batch))  # the worker only counts them
        return admitted

    def run(self, admitted: Batch, committing: Callable[[], None] | None = None) -> None:
        datagrams = cast(list[Datagram], admitted.work)
        gate = self.gates.get(datagrams[0].data, self.release)
        if committing is not None and datagrams[0].data in self.committing:
            committing()
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        gate.wait(10)
        with self._lock:
            self.running -= 1

    def finish(self, admitted: Batch) -> tuple[list[Reply], list[object]]:
        batch = cast(list[Datagram], admitted.work)
        return [Reply(d.addr, d.port, b"ok:" + d.data) for d in batch], []


@pytest.fixture(autouse=True)
def slow_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough that a loaded machine cannot make a batch slow while a
    # test checks that it is not; the tests wait in fractions of it.
    monkeypatch.setattr(server, "SLOW_BATCH", 0.5)


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    auth = server.bind_udp("127.0.0.1", 0, False)
    acct = server.bind_udp("127.0.0.1", 0, False)
    yield auth, acct
    auth.close()
    acct.close()


def _serve(recorder: Recorder, auth: socket.socket, acct: socket.socket,
           script: Callable[[asyncio.Event], Awaitable[None]], threads: int = 2) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        worker = server.Worker(cast(Handler, recorder), threads=threads)
        task = asyncio.create_task(worker.run(auth, acct, stop))
        await script(stop)
        await task
    asyncio.run(main())


def _send(port: int, payloads: list[bytes]) -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    for payload in payloads:
        client.sendto(payload, ("127.0.0.1", port))
    return client


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def _a_third_waits(recorder: Recorder, port: int, clients: list[socket.socket],
                         wait: float) -> None:
    """With two batches running (both threads busy), a third sent to
    ``port`` waits for one of them; then all three end."""
    clients.append(_send(port, [b"third"]))
    await asyncio.sleep(wait)
    assert len(recorder.batches) == 2
    recorder.release.set()
    await _until(lambda: len(recorder.batches) == 3 and recorder.running == 0)


def test_what_arrives_while_a_batch_runs_makes_one_bigger_batch(
        sockets: tuple[socket.socket, socket.socket]) -> None:
    auth, acct = sockets
    recorder = Recorder()
    port = acct.getsockname()[1]
    clients: list[socket.socket] = []

    async def script(stop: asyncio.Event) -> None:
        clients.append(_send(port, [b"first"]))
        await _until(lambda: recorder.running == 1)
        # Well within SLOW_BATCH: the worker must not start a second batch.
        clients.append(_send(port, [b"a%d" % i for i in range(20)]))
        await asyncio.sleep(server.SLOW_BATCH / 5)
        assert len(recorder.batches) == 1
        recorder.release.set()
        await _until(lambda: sum(map(len, recorder.batches)) == 21)
        stop.set()

    _serve(recorder, auth, acct, script)
    assert recorder.batches[0] == [b"first"]
    assert recorder.batches[1:] == [[b"a%d" % i for i in range(20)]]
    assert recorder.most_at_once == 1
    # Everything was answered, after its batch.
    answers = {clients[1].recv(100) for _ in range(20)}
    assert answers == {b"ok:a%d" % i for i in range(20)}
    for client in clients:
        client.close()


def test_a_slow_batch_lets_the_next_start_beside_it(
        sockets: tuple[socket.socket, socket.socket]) -> None:
    auth, acct = sockets
    recorder = Recorder()
    clients: list[socket.socket] = []

    async def script(stop: asyncio.Event) -> None:
        clients.append(_send(auth.getsockname()[1], [b"slow"]))
        await _until(lambda: recorder.running == 1)
        await asyncio.sleep(server.SLOW_BATCH * 2)
        clients.append(_send(acct.getsockname()[1], [b"next"]))
        # The first batch is still running (release is not set): the
        # second starts beside it, in the other thread.
        await _until(lambda: recorder.running == 2)
        await _a_third_waits(recorder, acct.getsockname()[1], clients, server.SLOW_BATCH * 2)
        stop.set()

    _serve(recorder, auth, acct, script)
    assert recorder.batches == [[b"slow"], [b"next"], [b"third"]]
    assert recorder.most_at_once == 2
    assert clients[0].recv(100) == b"ok:slow"
    for client in clients:
        client.close()


def test_when_the_slow_batch_ends_a_batch_not_yet_slow_still_holds_the_next(
        sockets: tuple[socket.socket, socket.socket]) -> None:
    auth, acct = sockets
    recorder = Recorder()
    slow = recorder.gates[b"slow"] = threading.Event()
    port = acct.getsockname()[1]
    clients: list[socket.socket] = []

    async def script(stop: asyncio.Event) -> None:
        clients.append(_send(port, [b"slow"]))
        await _until(lambda: recorder.running == 1)
        await asyncio.sleep(server.SLOW_BATCH * 2)
        clients.append(_send(port, [b"second"]))
        await _until(lambda: recorder.running == 2)
        slow.set()  # the slow one ends; "second" has just started
        await _until(lambda: recorder.running == 1)
        clients.append(_send(port, [b"third"]))
        await asyncio.sleep(server.SLOW_BATCH / 5)
        # A third thread is free, but "second" is not slow yet: "third" waits.
        assert len(recorder.batches) == 2
        recorder.release.set()
        await _until(lambda: len(recorder.batches) == 3 and recorder.running == 0)
        stop.set()

    _serve(recorder, auth, acct, script, threads=3)
    assert recorder.batches == [[b"slow"], [b"second"], [b"third"]]
    for client in clients:
        client.close()


def test_a_batch_at_its_commit_lets_the_next_start_and_answers_after_it(
        sockets: tuple[socket.socket, socket.socket]) -> None:
    auth, acct = sockets
    recorder = Recorder()
    recorder.committing.add(b"committing")
    port = acct.getsockname()[1]
    clients: list[socket.socket] = []

    async def script(stop: asyncio.Event) -> None:
        clients.append(_send(port, [b"committing"]))
        await _until(lambda: recorder.running == 1)
        # Well within SLOW_BATCH: the first is at its commit, so the
        # second starts beside it.
        clients.append(_send(port, [b"next"]))
        await _until(lambda: recorder.running == 2, timeout=server.SLOW_BATCH / 2)
        # Not answered before its commit ends.
        clients[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            clients[0].recv(100)
        await _a_third_waits(recorder, port, clients, server.SLOW_BATCH / 5)
        stop.set()

    _serve(recorder, auth, acct, script)
    assert recorder.batches == [[b"committing"], [b"next"], [b"third"]]
    assert recorder.most_at_once == 2
    clients[0].settimeout(5)
    assert clients[0].recv(100) == b"ok:committing"
    for client in clients:
        client.close()
