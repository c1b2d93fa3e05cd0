"""The lab's two ends of the check-in latency probe.

``send`` (in a client namespace) writes UDP datagrams to an upstream host as
raw Ethernet frames, so one process can speak for any (MAC, IPv4) pair the
way a laptop would on the wire. It sends for one target at a time, every
``--interval`` seconds; a line "<index> <mac> <ip>" on stdin switches the
target (answered "ok <index>" once the first frame for it is out), "idle"
stops sending.

``receive`` (in the upstream namespace) prints "ready", then, for each index,
"<index> <ns>" once: the kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME,
shared by every namespace) of the first datagram of that index. Kernel
timestamps keep the receiver's own scheduling out of the figure.

    python -m benchmarks.gateway.probe send --iface eth0 --dst-mac M --dst IP --port P
    python -m benchmarks.gateway.probe receive --bind IP --port P
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import select
import socket
import struct
import sys

ETH_P_IP = 0x0800
SRC_PORT = 40000
# Linux's SO_TIMESTAMPNS (asm-generic/socket.h); Python 3.11 does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(dst_mac: str, src_mac: str, src: str, dst: str, port: int, ident: int,
          payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP (checksum 0: optional over IPv4, RFC 768)."""
    udp = struct.pack("!HHHH", SRC_PORT, port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64,
                         socket.IPPROTO_UDP, 0, ipaddress.IPv4Address(src).packed,
                         ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return (bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
            + struct.pack("!H", ETH_P_IP) + header + udp)


def send(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((args.iface, 0))
    stdin = sys.stdin.fileno()
    target: tuple[int, str, str] | None = None
    buffered = b""
    ident = 0
    while True:
        ready, _, _ = select.select([stdin], [], [], args.interval if target else None)
        if ready:
            chunk = os.read(stdin, 4096)
            if not chunk:
                return
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                words = line.decode().split()
                if words == ["idle"]:
                    target = None
                    print("ok idle", flush=True)
                elif len(words) == 3:
                    target = (int(words[0]), words[1], words[2])
                    ident += 1
                    sock.send(frame(args.dst_mac, target[1], target[2], args.dst, args.port,
                                    ident, f"{target[0]} {ident}".encode()))
                    print(f"ok {target[0]}", flush=True)
            continue
        if target is not None:
            ident += 1
            sock.send(frame(args.dst_mac, target[1], target[2], args.dst, args.port, ident,
                            f"{target[0]} {ident}".encode()))


def receive(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((args.bind, args.port))
    print("ready", flush=True)
    seen: set[int] = set()
    while True:
        data, ancillary, _flags, _addr = sock.recvmsg(512, socket.CMSG_SPACE(16))
        try:
            index = int(data.split()[0])
        except (ValueError, IndexError):
            continue  # not one of ours
        if index in seen:
            continue
        seen.add(index)
        stamp = 0
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", raw[:16])
                stamp = sec * 1_000_000_000 + nsec
        print(f"{index} {stamp}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send")
    s.add_argument("--iface", required=True)
    s.add_argument("--dst-mac", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--interval", type=float, default=0.0002)
    r = sub.add_parser("receive")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        send(args) if args.mode == "send" else receive(args)


if __name__ == "__main__":
    main()
