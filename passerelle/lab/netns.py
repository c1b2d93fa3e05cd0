"""A whole site in network namespaces, built per test run (or demo) and always removed.

::

    client  (eth0 198.51.100.10)  ─┐
    client2 (eth0 198.51.100.11)  ─┤ sw (bridge br0: the site's switch / AP)
    <more clients: add_client()>  ─┤
                      gw lan 198.51.100.1/24 ─┘   (the box)
                      gw wan 203.0.113.2/24 ── up eth0 203.0.113.1/24 (the internet)
                                               up lo 192.0.2.80, 192.0.2.81 (hosts)

IPv6 beside it: LAN 2001:db8:1::/64 (box ::1), WAN 2001:db8:2::/64, upstream
hosts 2001:db8:ff::80 and ::81; IPv6 is routed (``up`` has a route back).

Each client's resolver is the box, as DHCP would tell a laptop:
``ip netns exec`` binds ``/etc/netns/<namespace>/resolv.conf`` over
``/etc/resolv.conf``, and the lab writes that file with the client and
removes it with the namespace.

Namespaces are named ``psl-<id>-<role>``. Every interface lives inside a lab
namespace (veth pairs are created namespace to namespace), so the root
namespace's links, routes and firewall are never touched. Processes started
with ``popen()`` or ``serve()`` are ended on ``close()``, then every process
left in a lab namespace (dhclient, dnsmasq: all started by the test), then
the namespaces. Namespaces that an earlier, dead run left are removed when a
new lab starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "psl-"
MARKS = Path("/run/passerelle-lab")  # <id> -> pid of the process that owns the lab
NETNS_ETC = Path("/etc/netns")  # per-namespace files `ip netns exec` binds over /etc
TOOLS = ("ip", "nft", "dnsmasq", "dhclient", "iperf3", "curl", "ss")

# A tiny server for the lab's hosts, run with the test's Python:
#   http ADDR PORT STATUS BODY  -> answers every GET with STATUS and "BODY <peer address>"
#                                  (for 3xx, Location: BODY)
#   tcp ADDR PORT               -> accepts and closes (an "HTTPS" port that is open)
#   udp ADDR PORT FILE          -> appends "<peer> <payload>" per datagram to FILE
SERVER = r"""
import http.server, socket, socketserver, sys
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
if mode == "http":
    status, body = int(sys.argv[4]), sys.argv[5]
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = f"{body} {self.client_address[0]}\n".encode()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", body)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def log_message(self, *args):
            pass
    class Server(http.server.ThreadingHTTPServer):
        address_family = family
        def server_bind(self):
            if family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # Not HTTPServer's: its reverse lookup of the address waits for a DNS timeout.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = addr, port
    srv = Server((addr, port), Handler)
    print("ready", flush=True)
    srv.serve_forever()
elif mode == "tcp":
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.close()
elif mode == "udp":
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("ready", flush=True)
    with open(sys.argv[4], "a") as out:
        while True:
            data, peer = s.recvfrom(65535)
            out.write(f"{peer[0]} {data.decode(errors='replace')}\n"); out.flush()
"""


class LabUnavailable(Exception):
    """Why this machine cannot build the lab (not root, a tool missing)."""


def missing() -> str | None:
    """The reason the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the network-namespace lab needs root"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return f"the lab needs {', '.join(absent)} (deploy/system-packages.sh test)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(min_age: float = 60.0) -> list[str]:
    """Delete lab namespaces whose owning process is gone (earlier runs)."""
    run_dir = Path("/run/netns")
    removed: list[str] = []
    if NETNS_ETC.is_dir():
        # A resolver left without its namespace (an earlier run killed in between).
        for etc in NETNS_ETC.glob(f"{PREFIX}*"):
            with contextlib.suppress(OSError):
                if (not (run_dir / etc.name).exists()
                        and time.time() - etc.stat().st_mtime >= min_age):
                    shutil.rmtree(etc, ignore_errors=True)
    if not run_dir.is_dir():
        return removed
    for entry in run_dir.iterdir():
        if not entry.name.startswith(PREFIX):
            continue
        lab_id = entry.name[len(PREFIX):].split("-", 1)[0]
        mark = MARKS / lab_id
        try:
            owner = int(mark.read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and _pid_alive(owner):
            continue  # a lab in use by a run in parallel
        try:
            young = time.time() - entry.stat().st_mtime < min_age
        except OSError:
            continue
        if young and not owner:
            continue  # not ours to judge yet: perhaps another tool's namespace being built
        subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, check=False)
        shutil.rmtree(NETNS_ETC / entry.name, ignore_errors=True)
        removed.append(entry.name)
        with contextlib.suppress(OSError):
            mark.unlink()
    return removed


class Lab:
    """One lab; use as a context manager (or ``close()`` in a finalizer)."""

    # The box.
    lan_if = "lan"
    wan_if = "wan"
    box_ipv4 = "198.51.100.1"
    box_ipv6 = "2001:db8:1::1"
    lan_net = "198.51.100.0/24"
    lan_net6 = "2001:db8:1::/64"
    wan_ipv4 = "203.0.113.2"
    wan_ipv6 = "2001:db8:2::2"
    # The internet.
    up_ipv4 = "203.0.113.1"
    up_ipv6 = "2001:db8:2::1"
    web_ipv4 = "192.0.2.80"  # HTTP on 80, an open TCP port 443, iperf3 on 5201
    garden_ipv4 = "192.0.2.81"  # a second host, for walled-garden tests
    web_ipv6 = "2001:db8:ff::80"
    garden_ipv6 = "2001:db8:ff::81"

    def __init__(self) -> None:
        why = missing()
        if why:
            raise LabUnavailable(why)
        remove_stale()
        self.id = secrets.token_hex(3)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.id}-"))
        self.ns: dict[str, str] = {}
        self.mac: dict[str, str] = {}
        self.ipv4: dict[str, str] = {}
        self.ipv6: dict[str, str] = {}
        self._procs: list[subprocess.Popen[str]] = []
        self._closed = False
        MARKS.mkdir(parents=True, exist_ok=True)
        (MARKS / self.id).write_text(str(os.getpid()))
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- building -----------------------------------------------------------

    def _netns(self, role: str) -> str:
        name = f"{PREFIX}{self.id}-{role}"
        _ip("netns", "add", name)
        self.ns[role] = name
        self.run(role, "ip", "link", "set", "lo", "up")
        # No DAD wait: static IPv6 addresses are usable at once.
        self.run(role, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                 "net.ipv6.conf.default.accept_dad=0")
        return name

    def _build(self) -> None:
        for role in ("sw", "gw", "up"):
            self._netns(role)
        self.run("sw", "ip", "link", "add", "br0", "type", "bridge")
        self.run("sw", "ip", "link", "set", "br0", "up")
        # gw lan <-> sw p-gw
        self._veth("gw", self.lan_if, "sw", "p-gw")
        self.run("sw", "ip", "link", "set", "p-gw", "master", "br0", "up")
        self.run("gw", "ip", "addr", "add", f"{self.box_ipv4}/24", "dev", self.lan_if)
        self.run("gw", "ip", "addr", "add", f"{self.box_ipv6}/64", "dev", self.lan_if)
        self.run("gw", "ip", "link", "set", self.lan_if, "up")
        # gw wan <-> up eth0
        self._veth("gw", self.wan_if, "up", "eth0")
        self.run("gw", "ip", "addr", "add", f"{self.wan_ipv4}/24", "dev", self.wan_if)
        self.run("gw", "ip", "addr", "add", f"{self.wan_ipv6}/64", "dev", self.wan_if)
        self.run("gw", "ip", "link", "set", self.wan_if, "up")
        self.run("gw", "ip", "route", "add", "default", "via", self.up_ipv4)
        self.run("gw", "ip", "-6", "route", "add", "default", "via", self.up_ipv6)
        self.run("gw", "sysctl", "-qw", "net.ipv4.ip_forward=1",
                 "net.ipv6.conf.all.forwarding=1")
        self.run("up", "ip", "addr", "add", f"{self.up_ipv4}/24", "dev", "eth0")
        self.run("up", "ip", "addr", "add", f"{self.up_ipv6}/64", "dev", "eth0")
        self.run("up", "ip", "link", "set", "eth0", "up")
        for host in (self.web_ipv4, self.garden_ipv4):
            self.run("up", "ip", "addr", "add", f"{host}/32", "dev", "lo")
        for host in (self.web_ipv6, self.garden_ipv6):
            self.run("up", "ip", "addr", "add", f"{host}/128", "dev", "lo")
        # IPv6 is routed, not masqueraded: the internet knows the way back.
        self.run("up", "ip", "-6", "route", "add", self.lan_net6, "via", self.wan_ipv6)
        self.add_client("client", "02:50:00:00:00:10", "198.51.100.10", "2001:db8:1::10")
        self.add_client("client2", "02:50:00:00:00:11", "198.51.100.11", "2001:db8:1::11")

    def _veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        _ip("-n", self.ns[ns_a], "link", "add", if_a, "type", "veth", "peer", "name", if_b,
            "netns", self.ns[ns_b])

    def add_client(self, role: str, mac: str, ipv4: str | None = None,
                   ipv6: str | None = None) -> str:
        """A laptop on the site's switch: ``eth0`` with ``mac``; with
        ``ipv4`` a static address and the box as default gateway, without
        it no address (for DHCP)."""
        self._netns(role)
        port = f"p-{role}"[:15]
        self._veth(role, "eth0", "sw", port)
        self.run("sw", "ip", "link", "set", port, "master", "br0", "up")
        self.run(role, "ip", "link", "set", "eth0", "address", mac)
        self.mac[role] = mac
        if ipv4:
            self.run(role, "ip", "addr", "add", f"{ipv4}/24", "dev", "eth0")
            self.ipv4[role] = ipv4
        if ipv6:
            self.run(role, "ip", "addr", "add", f"{ipv6}/64", "dev", "eth0")
            self.ipv6[role] = ipv6
        self.run(role, "ip", "link", "set", "eth0", "up")
        if ipv4:
            self.run(role, "ip", "route", "add", "default", "via", self.box_ipv4)
        if ipv6:
            self.run(role, "ip", "-6", "route", "add", "default", "via", self.box_ipv6)
        etc = NETNS_ETC / self.ns[role]
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {self.box_ipv4}\n")
        return self.ns[role]

    def add_station(self, role: str, behind: str, mac: str, port: str = "port0") -> str:
        """A device on its own link to the namespace ``behind`` (an access
        point's port, e.g. a wired 802.1X port): ``eth0`` with ``mac`` in
        ``role``, ``port`` in ``behind``; no address. Not on the switch: the
        bridge would not pass 802.1X frames (01:80:c2:00:00:03)."""
        self._netns(role)
        self._veth(role, "eth0", behind, port)
        self.run(role, "ip", "link", "set", "eth0", "address", mac)
        self.mac[role] = mac
        self.run(role, "ip", "link", "set", "eth0", "up")
        self.run(behind, "ip", "link", "set", port, "up")
        return self.ns[role]

    # -- running ------------------------------------------------------------

    def _argv(self, ns: str, cmd: tuple[str, ...]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[ns], *cmd]

    def run(self, ns: str, *cmd: str, check: bool = True, timeout: float = 20,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the namespace of role ``ns``; raise on failure
        (with its output) when ``check``."""
        out = subprocess.run(self._argv(ns, cmd), capture_output=True, text=True,
                             timeout=timeout, input=input, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"{ns}: {' '.join(cmd)} exited {out.returncode}:\n"
                                 f"{out.stdout}{out.stderr}")
        return out

    def popen(self, ns: str, *cmd: str, **kwargs: object) -> subprocess.Popen[str]:
        """Start ``cmd`` in the namespace; it is ended on ``close()``.
        stdout and stderr are pipes unless given: read them, or pass a file
        or DEVNULL for a chatty process (a full pipe blocks it)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            self._argv(ns, cmd), text=True, **kwargs)
        self._procs.append(proc)
        return proc

    def serve(self, ns: str, mode: str, addr: str, port: int, *args: str,
              timeout: float = 10) -> subprocess.Popen[str]:
        """One of ``SERVER``'s modes in the namespace, once it is listening."""
        proc = self.popen(ns, sys.executable, "-c", SERVER, mode, addr, str(port), *args)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""  # "ready", or EOF if it died
        if line.strip() != "ready":
            proc.kill()
            proc.wait(timeout=timeout)
            raise AssertionError(f"{mode} server on {addr}:{port} in {ns} did not start: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        return proc

    def wait_listening(self, ns: str, port: int, proto: str = "tcp",
                       timeout: float = 10) -> None:
        """Until something in the namespace listens on ``port``."""
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run(ns, "ss", flag, f"sport = :{port}", check=False)
            if out.stdout.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on {proto} {port} in {ns}")

    def start_internet(self) -> None:
        """The upstream hosts: HTTP on 80 (both hosts), an open 443 and iperf3 on web."""
        self.serve("up", "http", "0.0.0.0", 80, "200", "upstream")
        self.serve("up", "http", "::", 80, "200", "upstream")
        self.serve("up", "tcp", self.web_ipv4, 443)
        self.popen("up", "iperf3", "-s", "-B", self.web_ipv4, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
        self.wait_listening("up", 5201)

    def start_upstream_dns(self, records: dict[str, str]) -> None:
        """The internet's DNS on ``up_ipv4``:53, answering ``records`` (name -> address)."""
        self.popen("up", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                   "--no-resolv", "--no-hosts", f"--listen-address={self.up_ipv4}",
                   "--bind-interfaces", f"--pid-file={self.tmp / 'up-dns.pid'}",
                   *(f"--address=/{name}/{addr}" for name, addr in records.items()),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_listening("up", 53, "udp")

    # -- ending -------------------------------------------------------------

    def pids(self, ns: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns[ns]], capture_output=True,
                             text=True, check=False)
        return [int(p) for p in out.stdout.split()]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        # What the tests started and left detached in the lab (dhclient, dnsmasq).
        for role in list(self.ns):
            for pid in self.pids(role):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        with contextlib.suppress(OSError):
            (MARKS / self.id).unlink()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    with Lab() as built:
        yield built
