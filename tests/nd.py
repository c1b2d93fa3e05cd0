"""Neighbour discovery from a lab namespace: scripts run with
``lab.run(ns, sys.executable, "-c", SCRIPT)``."""

# A Router Solicitation (RFC 4861 section 4.1), then the first Router
# Advertisement: its source address, the hop limit it arrived with, the
# seconds it took and the message in hex.
ASK_RA = r"""
import socket, struct, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
s.settimeout(10)
asked = time.monotonic()
s.sendto(struct.pack("!BBHI", 133, 0, 0, 0), ("ff02::2", 0, 0, socket.if_nametoindex("eth0")))
while True:
    data, ancillary, _, source = s.recvmsg(4096, socket.CMSG_SPACE(4))
    if data[0] == 134:
        break
hops = [struct.unpack("@i", d[:4])[0] for level, kind, d in ancillary
        if kind == socket.IPV6_HOPLIMIT]
print(source[0], hops[0], round(time.monotonic() - asked, 2), data.hex())
"""

# Router advertisements heard on the LAN: the router lifetime of each, one a
# line, until one says 0 (or 15 s pass).
HEAR_RA = r"""
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(15)
print("ready", flush=True)
while True:
    data = s.recv(4096)
    if data[0] == 134:
        lifetime = struct.unpack("!H", data[6:8])[0]
        print(lifetime, flush=True)
        if lifetime == 0:
            break
"""
