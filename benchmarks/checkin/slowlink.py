"""A link with a fixed one-way delay, in user space: the lab's stand-in for
``tc qdisc ... netem delay``, which this kernel may lack (netem is a module
many container and CI kernels leave out).

Two TAP devices are the link's ends; this process holds both and copies
every Ethernet frame from one to the other ``delay`` seconds after it read
it, in order, each way (ARP, TCP handshakes and acknowledgements included,
as on a real path). It is started in the namespace of end ``b``; end ``a``
is moved into the namespace ``--a-netns`` at once (a TAP device keeps its
descriptor when it changes namespace). Without offloads asked for
(TUNSETOFFLOAD), the kernel hands a TAP whole frames no larger than its MTU.

    python -m benchmarks.checkin.slowlink --a c0 --a-netns NS --b eth0 [--delay-ms 15]

It prints "ready" once both ends exist. On stdin, "delay <ms>" changes the
delay of the frames read from then on (answered "ok <ms>"); EOF ends it.
A frame the other end cannot take (its interface down) is dropped, as a
cable would.
"""

from __future__ import annotations

import argparse
import collections
import errno
import fcntl
import os
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA  # linux/if_tun.h
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Delayed:
    """Frames waiting to leave one way: a FIFO, since the delay is the same
    for every frame read after a change (a shorter new delay waits behind
    the frames already in flight, as on a wire)."""

    def __init__(self) -> None:
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()

    def add(self, due: float, frame: bytes) -> None:
        if self.queue and due < self.queue[-1][0]:
            due = self.queue[-1][0]
        self.queue.append((due, frame))

    def due(self, now: float) -> list[bytes]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(self.queue.popleft()[1])
        return out

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None


def _write(fd: int, frame: bytes) -> None:
    try:
        os.write(fd, frame)
    except OSError as exc:
        # EIO: that end is down; EAGAIN: its queue is full. A lost frame.
        if exc.errno not in (errno.EIO, errno.EAGAIN):
            raise


def run(a: int, b: int, delay: float) -> None:
    stdin = sys.stdin.fileno()
    towards = {a: b, b: a}
    waiting = {b: Delayed(), a: Delayed()}  # keyed by the end the frames leave from
    buffered = b""
    while True:
        now = time.monotonic()
        pending = [d for d in (w.next_due() for w in waiting.values()) if d is not None]
        timeout = max(0.0, min(pending) - now) if pending else None
        ready, _, _ = select.select([a, b, stdin], [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            if fd == stdin:
                chunk = os.read(stdin, 4096)
                if not chunk:
                    return
                buffered += chunk
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    words = line.decode().split()
                    if len(words) == 2 and words[0] == "delay":
                        delay = float(words[1]) / 1000
                        print(f"ok {words[1]}", flush=True)
                continue
            # Everything the end has for us now, stamped with the same arrival.
            while True:
                try:
                    frame = os.read(fd, MAX_FRAME)
                except BlockingIOError:
                    break
                waiting[towards[fd]].add(now + delay, frame)
        for out, frames in waiting.items():
            for frame in frames.due(time.monotonic()):
                _write(out, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="the end moved to --a-netns")
    parser.add_argument("--a-netns", required=True)
    parser.add_argument("--b", required=True, help="the end left in this namespace")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    a, b = open_tap(args.a), open_tap(args.b)
    subprocess.run(["ip", "link", "set", args.a, "netns", args.a_netns], check=True)
    print("ready", flush=True)
    run(a, b, args.delay_ms / 1000)


if __name__ == "__main__":
    main()
