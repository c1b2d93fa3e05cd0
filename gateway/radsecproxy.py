"""The box's RadSec leg: radsecproxy's configuration, and its process.

The box's RADIUS client keeps speaking UDP, to radsecproxy on the loopback;
radsecproxy holds the TLS connection to the centre with the box's enrolment
certificate (RFC 6614, secret "radsec"). One radsecproxy per central node,
each on its own loopback UDP port (both authentication and accounting:
radsecproxy routes by code), so the box's client chooses the node and fails
over itself: radsecproxy's own tracking of a node takes about 35 s to see
one that hangs. See docs/radsec.md.
"""

from __future__ import annotations

import ctypes
import logging
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("passerelle.gateway")

BINARY = "radsecproxy"
LOCAL_PORT = 11812  # loopback UDP, auth and acct: the first node's proxy
CENTRE_PORT = 2083
PR_SET_PDEATHSIG = 1  # linux/prctl.h

# radsecproxy's configuration has no escapes: refuse what would break a line.
_SAFE = re.compile(r"[!-~]+")
_UNSAFE = set('"\'{}#')


@dataclass(frozen=True)
class Centre:
    host: str
    port: int = CENTRE_PORT


@dataclass(frozen=True)
class ProxyConfig:
    centre: Centre  # the one node this proxy carries to
    cert: Path
    key: Path
    ca: Path
    local_secret: str  # between the box's client and radsecproxy, on the loopback
    local_port: int = LOCAL_PORT
    log_file: Path | None = None  # None: syslog (the journal)


def _value(what: str, text: str) -> str:
    if not _SAFE.fullmatch(text) or _UNSAFE & set(text):
        raise ValueError(f"radsecproxy: {what} {text!r} has a space, a quote, a brace or "
                         "a '#', which its configuration cannot hold")
    return text


def render(config: ProxyConfig) -> str:
    """radsecproxy.conf for ``config``: one server, its node, for both kinds."""
    host = _value("centre host", config.centre.host)
    return "\n".join([
        "# Written by passerelle (gateway/radsecproxy.py): edits are overwritten.",
        f"ListenUDP 127.0.0.1:{int(config.local_port)}",
        "LogLevel 2",  # errors, warnings, connections; not a line per request
        f"LogDestination file://{_value('log file', str(config.log_file))}"
        if config.log_file else "LogDestination x-syslog:///LOG_DAEMON",
        "LoopPrevention on",
        "",
        "tls enrolment {",
        f"    CACertificateFile {_value('CA file', str(config.ca))}",
        f"    CertificateFile {_value('certificate file', str(config.cert))}",
        f"    CertificateKeyFile {_value('key file', str(config.key))}",
        "    TlsVersion TLS1_2:",
        "}",
        "",
        "client box {",
        "    type udp",
        "    host 127.0.0.1",
        f"    secret {_value('local secret', config.local_secret)}",
        "}",
        "",
        "server centre {",
        "    type tls",
        f"    host {'[' + host + ']' if ':' in host else host}",
        f"    port {int(config.centre.port)}",
        "    secret radsec",  # RFC 6614 section 2.3
        "    tls enrolment",
        # RFC 5997: radsecproxy judges the node by probing, not by lost requests
        # (the box's client does its own failover between the proxies).
        "    StatusServer on",
        "    CertificateNameCheck on",
        "}",
        "",
        "realm * {",
        "    server centre",
        "    accountingServer centre",
        "}",
        "",
    ])


def _die_with_parent() -> None:
    # A killed box service must not leave a proxy holding the port behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Proxy:
    """radsecproxy in the foreground, as a child of the box's service."""

    def __init__(self, config: ProxyConfig, conf_path: Path,
                 binary: str | None = None) -> None:
        self.config = config
        self.conf_path = conf_path
        self.binary = binary or shutil.which(BINARY) or f"/usr/sbin/{BINARY}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.conf_path.write_text(render(self.config))
        self.conf_path.chmod(0o600)  # it holds the local secret
        checked = subprocess.run([self.binary, "-p", "-c", str(self.conf_path)],
                                 capture_output=True, text=True, check=False, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"radsecproxy refused its configuration: "
                               f"{(checked.stderr or checked.stdout).strip()}")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", str(self.conf_path)],
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.info("radsecproxy started (pid %d): 127.0.0.1:%d to %s:%d", self.proc.pid,
                 self.config.local_port, self.config.centre.host, self.config.centre.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart_if_dead(self) -> bool:
        """Start again a radsecproxy that died (not one stopped): True when
        restarted. Meanwhile its node is dead to the box's client."""
        if self.proc is None or self.proc.poll() is None:
            return False
        log.warning("radsecproxy to %s:%d died (exit %s); restarting", self.config.centre.host,
                    self.config.centre.port, self.proc.returncode)
        self.start()  # if it fails, the dead process stays: the next call tries again
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
