"""Is a dead central node back? The RadSec box's answer, for its RADIUS client.

On a RadSec box the client's servers are the radsecproxies on the loopback,
one per node. radsecproxy answers a Status-Server itself, whether or not its
node does, so the client's probe of a dead server (RFC 5997) goes to the
node instead: a Status-Server over TLS with the box's certificate, on a
connection of its own (gateway/tls_status.py), as doctor and the heartbeat
ask.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from passerelle.radius import messages as m

from . import tls_status
from .peers import RadiusServer
from .radclient import NasIdentity
from .radsecproxy import Centre
from .reverse_coa import Credentials

log = logging.getLogger("passerelle.gateway")


class NodeProbe:
    """``RadiusClient``'s prober: the node behind each loopback proxy."""

    def __init__(self, nodes: Mapping[RadiusServer, Centre], credentials: Credentials,
                 nas: NasIdentity) -> None:
        self.nodes = dict(nodes)
        self.credentials = credentials
        self.nas = nas

    def __call__(self, server: RadiusServer, timeout: float) -> bool:
        centre = self.nodes[server]
        request = m.StatusServer(nas_identifier=self.nas.identifier,
                                 nas_ip_address=self.nas.ipv4)
        why = tls_status.ask(centre.host, centre.port, self.credentials, request, timeout)
        if why is not None:
            log.info("centre %s:%d (through 127.0.0.1:%d) is still out: %s", centre.host,
                     centre.port, server.auth_port, why)
            return False
        log.info("centre %s:%d answered a Status-Server over TLS", centre.host, centre.port)
        return True
