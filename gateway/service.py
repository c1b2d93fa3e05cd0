"""Putting the box together: from a ``Config`` to running parts.

Start order matters: the VLANs' interfaces and the kernel's table first
(so clients are held at the gate from the first second), then dnsmasq,
then the sessions restored and reconciled, then what listens (RFC 5176,
the control socket) and the timers.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from passerelle import systemd

from . import heartbeat, metrics
from .ap_server import ApServer
from .clients import Clients
from .config import Config, dhcp_plan, firewall_plan
from .control import Backend, ControlError, ControlServer
from .dae_server import DaeServer, Sessions
from .daemon import Daemon, Refused, table_exists
from .dnsmasq import Dnsmasq
from .keysync import KeySync, SyncError
from .nft import Firewall
from .peers import RadiusServer
from .ra import Advert
from .ra_sender import RouterAdvertiser
from .radclient import NasIdentity, RadiusClient
from .radsec_probe import NodeProbe
from .radsecproxy import Centre, Proxy, ProxyConfig
from .reverse_coa import Credentials, ReverseCoa
from .session_table import SessionTable
from .spool import Spool, SpoolSender
from .tls_status import TlsStatus
from .vlan import Links

log = logging.getLogger("passerelle.gateway")
# APScheduler logs every run of every timer at INFO: only its problems matter.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


def nas_identity(config: Config) -> NasIdentity:
    return NasIdentity(identifier=config.identifier, ipv4=config.nas_ip,
                       operator_name=config.operator_name)


def radius_client(config: Config) -> RadiusClient:
    servers, prober = config.servers, None
    tls = config.radsec
    if tls is not None:
        # One radsecproxy per node on the loopback, in the nodes' order: the
        # client chooses the node, with the dead time and budget of UDP. A
        # dead one is probed at its node over TLS: its radsecproxy would
        # answer a Status-Server itself.
        nodes = loopback_nodes(config)
        servers = tuple(nodes)
        prober = NodeProbe(nodes, Credentials(tls.cert, tls.key, tls.ca), nas_identity(config))
    return RadiusClient(servers, nas_identity(config), timeout=config.radius_timeout,
                        tries=config.radius_tries, dead_time=config.dead_time,
                        probe=config.status_server, checkin_budget=config.checkin_budget,
                        prober=prober)


def loopback_nodes(config: Config) -> dict[RadiusServer, Centre]:
    """RadSec: each node's radsecproxy on the loopback (as the box's client
    sees it, with the first server's secret), and the node it carries to."""
    tls = config.radsec
    assert tls is not None
    secret = config.servers[0].secret
    return {RadiusServer("127.0.0.1", secret, port, port): Centre(s.host, tls.port)
            for s, port in zip(config.servers, tls.local_ports(len(config.servers)),
                               strict=True)}


class RadsecParts:
    """A RadSec box's own processes and connections: one radsecproxy per
    node, and the reverse CoA connections."""

    def __init__(self, proxies: Sequence[Proxy], reverse: ReverseCoa,
                 obsolete: Sequence[Path] = ()) -> None:
        self.proxies = tuple(proxies)
        self.reverse = reverse
        self.obsolete = tuple(obsolete)

    def start(self) -> None:
        for path in self.obsolete:
            # A configuration of an earlier version: it holds the loopback secret.
            path.unlink(missing_ok=True)
        started: list[Proxy] = []
        try:
            for proxy in self.proxies:
                proxy.start()
                started.append(proxy)
        except BaseException:
            for proxy in started:  # none left holding its port behind a failed start
                proxy.stop()
            raise
        self.reverse.start()

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        self.reverse.stop()

    def restart_if_dead(self) -> int:
        """How many radsecproxies that had died were started again."""
        return sum(proxy.restart_if_dead() for proxy in self.proxies)


def radsec_parts(config: Config, nas: NasIdentity, sessions: Sessions) -> RadsecParts | None:
    """The radsecproxies and the reverse CoA connections, for transport = "radsec"."""
    tls = config.radsec
    if tls is None:
        return None
    nodes = loopback_nodes(config)
    local_secret = config.servers[0].secret.decode()
    proxies = [Proxy(ProxyConfig(centre=centre, cert=tls.cert, key=tls.key, ca=tls.ca,
                                 local_secret=local_secret, local_port=local.auth_port),
                     config.state_dir / f"radsecproxy-{n}.conf")
               for n, (local, centre) in enumerate(nodes.items(), 1)]
    reverse = ReverseCoa(tuple(nodes.values()), Credentials(tls.cert, tls.key, tls.ca), nas,
                         sessions, window=config.dae_window)
    # Before one radsecproxy per node, there was one, with this file.
    return RadsecParts(proxies, reverse, obsolete=(config.state_dir / "radsecproxy.conf",))


def centre_status(config: Config) -> TlsStatus | None:
    """With RadSec, the heartbeat goes to each centre over TLS itself:
    radsecproxy would answer it without asking any centre."""
    tls = config.radsec
    if tls is None:
        return None
    return TlsStatus(tuple(Centre(s.host, tls.port) for s in config.servers),
                     Credentials(tls.cert, tls.key, tls.ca), nas_identity(config),
                     timeout=config.radius_timeout)


def personal_keys(config: Config) -> KeySync | None:
    """The key pull of a box with a [keys] section; signed with the secret
    it shares with its first RADIUS server (the centre knows it)."""
    if not config.keys_url:
        return None
    return KeySync(config.keys_url, config.identifier, config.servers[0].secret,
                   config.keys_path, config.keys_key_file, timeout=config.keys_timeout,
                   ca_file=config.keys_ca_file)


class Box:
    """Every running part of one box."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.links = Links()
        self.firewall = Firewall(firewall_plan(config))
        self.dnsmasq = Dnsmasq(dhcp_plan(config), config.state_dir)
        # With IPv6 on the LAN, the box's own router advertisements (option 37).
        advert = router_advert(config)
        self.adverts = RouterAdvertiser(config.lan_if, advert) if advert else None
        self.radius = radius_client(config)
        self.spool = Spool(config.spool_path)
        self.sender = SpoolSender(self.spool, self.radius)
        self.status = heartbeat.Heartbeat(centre_status(config) or self.radius, self.spool)
        self.store = SessionTable(config.sessions_path)
        self.clients = Clients(config.lan_if, self.dnsmasq.leases, vlans=config.vlans)
        self.gateway = Daemon(config, firewall=self.firewall, radius=self.radius,
                               spool=self.spool, store=self.store, clients=self.clients,
                               wake_spool=self.sender.wake)
        self.dae = DaeServer(config.dae_listen, config.dae_port, config.dae_clients,
                             nas_identity(config),
                             self.gateway, window=config.dae_window)
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True,
                                                           "max_instances": 1,
                                                           "misfire_grace_time": 30})
        self.control: ControlServer | None = None
        self.access_points: ApServer | None = None
        if config.access_points:
            self.access_points = ApServer(config.wifi_listen, config.wifi_port,
                                          config.access_points, self.gateway,
                                          ssid=config.wifi_ssid,
                                          candidates_max=config.wifi_candidates_max,
                                          sessions=self.gateway)
            self.gateway.stations = self.access_points
            self.gateway.identities = self.access_points
        self.radsec = radsec_parts(config, nas_identity(config), self.gateway)
        self.keysync = personal_keys(config)
        self.gateway.personal_keys = self.keysync
        self._stopped = threading.Event()
        self.metrics = metrics.Exporter(config.metrics_listen, metrics.Sources(
            self.spool.pending, self.firewall.set_sizes, self.dnsmasq.lease_path)) \
            if config.metrics_listen is not None else None

    def start(self) -> None:
        booted = not table_exists()
        # The VLANs' interfaces before the rules and dnsmasq that serve them
        # (and any of ours no longer configured removed).
        self.links.apply(self.config.lan_if, self.config.vlans)
        self.firewall.apply()
        log.info("nftables table inet passerelle %s", "created" if booted else "kept")
        self.dnsmasq.start()
        if self.adverts is not None:
            self.adverts.start()
        if self.radsec is not None:
            self.radsec.start()
        self.gateway.restore(booted)
        self.restore_keys()
        self.sender.start()
        self.dae.start()
        if self.access_points is not None:
            self.access_points.start()
        if self.metrics is not None:
            self.metrics.start()
        self.control = ControlServer(self.config.control_socket, _Portal(self.gateway))
        self.control.start()
        self.clients.start()
        c = self.config
        self.scheduler.add_job(self._safe(self.gateway.sweep), "interval",
                               seconds=c.sweep_interval, id="sweep")
        self.scheduler.add_job(self._safe(self.gateway.follow_ipv6), "interval",
                               seconds=max(c.sweep_interval, 2.0), id="ipv6")
        self.scheduler.add_job(self._safe(self.gateway.check_presence), "interval",
                               seconds=c.lease_check_interval, id="presence")
        self.scheduler.add_job(self._safe(self.gateway.heartbeat), "interval",
                               seconds=c.heartbeat_interval, id="heartbeat")
        self.scheduler.add_job(self._safe(self.dnsmasq.restart_if_dead), "interval",
                               seconds=5, id="dnsmasq")
        if self.radsec is not None:
            self.scheduler.add_job(self._safe(self.radsec.restart_if_dead), "interval",
                                   seconds=5, id="radsecproxy")
        self.scheduler.add_job(self._safe(self.gateway.prune), "interval", hours=1, id="prune")
        if c.join_checks_in and self.access_points is not None:
            self.scheduler.add_job(self._safe(self.gateway.join_sweep), "interval",
                                   seconds=min(c.sweep_interval, 1.0), id="joins")
        if self.keysync is not None:
            # The first pull at once, in the scheduler's thread: a centre that
            # does not answer holds up nothing (the file's keys serve).
            self.scheduler.add_job(self._safe(self._pull_keys), "interval",
                                   seconds=c.keys_interval, id="keys",
                                   next_run_time=datetime.now(UTC))
        if (every := systemd.watchdog_interval()) is not None:  # alive = its timers run
            self.scheduler.add_job(systemd.notify, "interval", args=("WATCHDOG=1",),
                                   seconds=every, id="watchdog")
        # The centre's view of this box: Status-Server with version and spool depth.
        self.scheduler.add_job(self._safe(self.status.beat), "interval",
                               seconds=heartbeat.interval(c.interim_interval), id="status",
                               next_run_time=datetime.now(UTC))
        self.scheduler.start()
        log.info("gateway %s running: LAN %s (%s), WAN %s, RFC 5176 on %s:%d, control %s",
                 c.identifier, c.lan_if, c.lan_address, c.wan_if, c.dae_listen, self.dae.port,
                 c.control_socket)
        systemd.notify(f"READY=1\nSTATUS=gateway {c.identifier} running")

    def restore_keys(self) -> None:
        """The keys and device bindings of the last run, from the key file."""
        if self.keysync is None:
            return
        self.keysync.load()
        if self.access_points is not None:
            self.access_points.core.bindings.update(self.keysync.bindings)

    def _pull_keys(self) -> None:
        """The keys of the people allowed here, and the device bindings kept."""
        assert self.keysync is not None
        if self.access_points is not None:
            self.keysync.remember(self.access_points.core.bindings.copy())
        try:
            self.keysync.sync()
        except SyncError as exc:
            log.warning("keys: %s; the %d keys held serve meanwhile", exc,
                        len(self.keysync.keys()))

    @staticmethod
    def _safe(job: Any) -> Any:
        def run() -> None:
            try:
                job()
            except Exception:  # a timer's failure is logged; the next tick tries again
                log.exception("timer %s failed", getattr(job, "__name__", job))
        return run

    def stop(self) -> None:
        """Stop the daemon; sessions stay enforced by the kernel (the table
        and its sets are left as they are) and are restored at next start."""
        systemd.notify("STOPPING=1")
        self.scheduler.shutdown(wait=False)
        for part in (self.control, self.access_points, self.dae, self.sender, self.clients,
                     self.metrics):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s", type(part).__name__)
        self.gateway.heartbeat()
        if self.adverts is not None:  # the last one says "no longer a router"
            try:
                self.adverts.stop()
            except Exception:
                log.exception("stopping the router advertisements")
        self.dnsmasq.stop()
        if self.radsec is not None:
            self.radsec.stop()
        self.store.close()

    def run_forever(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopped.set())
        self.start()
        try:
            self._stopped.wait()
        finally:
            self.stop()


class _Portal:
    """Adapts the daemon to the control interface: a refusal becomes its
    4xx/5xx. It wraps the portal's calls of the daemon (the Backend's, which
    the daemon answers or refuses with Refused)."""

    def __init__(self, gateway: Backend) -> None:
        self.gateway = gateway

    def _wrap(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Refused as exc:
            raise ControlError.refused(exc.refusal, exc.message) from None

    def status(self) -> dict[str, Any]:
        return self.gateway.status()

    def who(self, ip: str) -> dict[str, Any]:
        return self._wrap(self.gateway.who, ip)

    def sessions(self) -> list[dict[str, Any]]:
        return self.gateway.sessions()

    def check_in(self, ip: str, login: str, password: str, chap: bool) -> dict[str, Any]:
        with metrics.check_in():
            return self._wrap(self.gateway.check_in, ip, login, password, chap)

    def check_out(self, ip: str) -> dict[str, Any]:
        return self._wrap(self.gateway.check_out, ip)

    def key_of(self, ip: str) -> dict[str, Any]:
        return self._wrap(self.gateway.key_of, ip)

    def rotate_key(self, ip: str) -> dict[str, Any]:
        return self._wrap(self.gateway.rotate_key, ip)

    def offer(self, ip: str) -> dict[str, Any]:
        return self._wrap(self.gateway.offer, ip)

    def check_in_by_key(self, ip: str) -> dict[str, Any]:
        return self._wrap(self.gateway.check_in_by_key, ip)


def router_advert(config: Config) -> Advert | None:
    """The LAN's router advertisement, with IPv6 on the LAN: what dnsmasq's
    carried (the /64, the box as DNS server, lifetimes of a DHCP lease) and
    the portal's RFC 8908 API URL, the one DHCPv6 option 103 carries."""
    six = config.lan_address6
    if six is None:
        return None
    return Advert(prefix=six.network, dns=(str(six.ip),), captive_url=config.portal_api_url,
                  lifetime=config.lease_time)
