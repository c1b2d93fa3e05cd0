"""RadSec through NAT, in the namespace lab: the box (gw) reaches the centre
(its own namespace, 192.0.2.10) only through a NAT router (up, masquerade),
so the centre sees the NAT's address, never the box's, and cannot open
anything towards the box. `passerelle gateway run` with transport = "radsec"
starts radsecproxy (its enrolment certificate) and the reverse CoA
connection; the centre is `passerelle radius serve --radsec-port 2083`.

A check-in and accounting go through; a Disconnect from the centre reaches
the box over the reverse connection and the client loses the internet; a
revoked certificate is refused at connection time.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.control import ControlClient
from passerelle.radius import db, enrolment
from passerelle.radius.models import Gateway, Radacct
from tests.boxlab import DAEMON_START, wait_for
from tests.gateway.conftest import require_lab
from tests.lab import Lab
from tests.need import tool
from tests.radius import seed
from tests.radius.test_radsec import Box, enrol_box

BIN = Path(sys.executable).parent / "passerelle"
NAT_INSIDE, CENTRE = "192.0.2.9", "192.0.2.10"  # the NAT's leg to the centre, the centre
CLIENT = "198.51.100.10"

CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "{state}"

[portal]
http_port = 8080

[radius]
transport = "radsec"
tls_cert = "{cert}"
tls_key = "{key}"
tls_ca = "{ca}"
timeout = 2
tries = 2
dead_time = 5

[[radius.servers]]
host = "{centre}"
secret = "{secret}"

[sessions]
sweep_interval = 0.5
lease_check_interval = 2
heartbeat_interval = 5
"""

# What the box's radsecproxy would send for the session's next interim, sent
# by the test over the box's own certificate (the box's interims come at
# most once a minute): ten minutes used, ivan has two, the centre cuts.
INTERIM = f"""
import socket, ssl, sys
from passerelle.radius import messages as m
from passerelle.radius.radsec import Framer
cert, key, ca, session = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
with ctx.wrap_socket(socket.create_connection(("{CENTRE}", 2083), timeout=10),
                     server_hostname="{CENTRE}") as tls:
    sent = m.AccountingRequest(status=m.AcctStatus.INTERIM_UPDATE, session_id=session,
        user_name="ivan@acme.example", nas_identifier="axis-gw", session_time=600,
        framed_ip_address="{CLIENT}").encode(b"radsec")
    tls.sendall(sent)
    framer = Framer()
    while not (got := framer.feed(data := tls.recv(4096))):
        if not data:
            sys.exit("the centre closed the connection")
    print(type(m.decode_reply(got[0], b"radsec", sent)).__name__)
"""


@dataclass
class Site:
    lab: Lab
    tmp: Path
    factory: sessionmaker[DB]
    box: Box
    control: ControlClient
    logs: list[Path]

    def read_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in self.logs if p.exists())

    def curl(self) -> str:
        out = self.lab.run("client", "curl", "-s", "-m", "3", "http://192.0.2.80/", check=False)
        return out.stdout.strip() if out.returncode == 0 else f"error {out.returncode}"


def build_nat(lab: Lab) -> None:
    """up becomes a NAT router between the box and a centre of its own."""
    lab._netns("centre")
    lab._veth("up", "c0", "centre", "eth0")
    lab.run("up", "ip", "addr", "add", f"{NAT_INSIDE}/30", "dev", "c0")
    lab.run("up", "ip", "link", "set", "c0", "up")
    lab.run("up", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    lab.run("up", "nft", "-f", "-", input=(
        "table ip radsec_nat {\n"
        " chain post { type nat hook postrouting priority 100; oifname \"c0\" masquerade; }\n"
        "}\n"))
    lab.run("centre", "ip", "addr", "add", f"{CENTRE}/30", "dev", "eth0")
    lab.run("centre", "ip", "link", "set", "eth0", "up")
    # The centre knows no way to the box's addresses: only the NAT's.
    lab.run("centre", "ip", "route", "add", "default", "via", NAT_INSIDE)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    require_lab()
    tool("radsecproxy", "radsecproxy")
    key_file = tmp_path / "server.key"
    os.environ["PASSERELLE_KEY_FILE"] = str(key_file)
    url = f"sqlite:///{tmp_path / 'centre.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.make_sessionmaker(engine)
    # Registered at the box's WAN address: behind the NAT it never comes from it.
    seed.build(factory, gateway_ip="203.0.113.2")
    etc = tmp_path / "etc"
    etc.mkdir()
    box = enrol_box(factory, etc)
    config = etc / "gateway.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", cert=box.cert, key=box.key,
                                    ca=box.ca, centre=CENTRE, secret=seed.SECRET))
    logs: list[Path] = []
    try:
        with Lab() as lab:
            build_nat(lab)
            lab.start_internet()
            lab.serve("gw", "http", lab.box_ipv4, 8080, "200", "portal")
            env = {**os.environ, "PASSERELLE_KEY_FILE": str(key_file)}
            logs.append(tmp_path / "centre.log")
            with logs[-1].open("w") as err:
                centre = lab.popen("centre", str(BIN), "radius", "serve", "--db", url,
                                   "--listen", CENTRE, "--radsec-port", "2083",
                                   "--radsec-name", CENTRE, env=env, stderr=err)
            assert centre.stdout is not None
            assert "radsec 2083" in centre.stdout.readline(), logs[-1].read_text()
            logs.append(tmp_path / "gateway.log")
            with logs[-1].open("w") as err:
                lab.popen("gw", str(BIN), "-v", "gateway", "run", "--config", str(config),
                          stderr=err, stdout=err)
            s = Site(lab, tmp_path, factory, box,
                     ControlClient(tmp_path / "state" / "control.sock", 10), logs)
            wait_for(lambda: _answers(s.control), timeout=DAEMON_START,
                     what="the box's control socket",
                     logs=s.read_logs)
            yield s
    finally:
        engine.dispose()
        del os.environ["PASSERELLE_KEY_FILE"]


def _answers(control: ControlClient) -> bool:
    try:
        control.status()
    except Exception:
        return False
    return True


def test_check_in_accounting_and_a_disconnect_through_the_nat(site: Site) -> None:
    assert not site.curl().startswith("upstream")  # held at the gate (the portal answers instead)
    result = wait_for(lambda: _check_in(site), what="a check-in through RadSec",
                      logs=site.read_logs)
    assert result["login"] == "ivan@acme.example", result
    assert site.curl().startswith("upstream")
    rows = wait_for(lambda: _sessions(site.factory), what="the session's Start at the centre",
                    logs=site.read_logs)
    session = rows[0].acctsessionid
    # The centre knows the box by its certificate: the address it sees is the NAT's.
    assert f"radsec: {NAT_INSIDE}:" in site.read_logs()
    assert "reverse path for Disconnect and CoA" in site.read_logs()
    sent = site.lab.run("gw", sys.executable, "-c", INTERIM, str(site.box.cert),
                        str(site.box.key), str(site.box.ca), session)
    assert sent.stdout.strip() == "AccountingResponse", sent
    wait_for(lambda: not site.curl().startswith("upstream"), what="the client cut off",
             logs=site.read_logs)
    assert re.search(rf"disconnect \d+ to axis-gw for {session}: ACK", site.read_logs())


def test_a_revoked_certificate_is_refused(site: Site) -> None:
    with site.factory() as s, s.begin():
        gateway = s.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        enrolment.revoke(s, gateway, datetime.now(UTC).replace(tzinfo=None))
    out = site.lab.run("gw", sys.executable, "-c", INTERIM, str(site.box.cert),
                       str(site.box.key), str(site.box.ca), "RS99", check=False)
    assert out.returncode != 0
    wait_for(lambda: "certificate revoked on" in site.read_logs(),
             what="the refusal in the centre's log", logs=site.read_logs)


def test_a_radsecproxy_that_dies_is_started_again(site: Site) -> None:
    """The box's service restarts its radsecproxy when it dies (its timer,
    every 5 s), as it does dnsmasq; a check-in goes through again."""
    conf = str(site.tmp / "state" / "radsecproxy-1.conf")
    first = wait_for(lambda: _proxy_pid(conf), what="radsecproxy running", logs=site.read_logs)
    os.kill(first, signal.SIGKILL)
    again = wait_for(lambda: (pid := _proxy_pid(conf)) != first and pid, timeout=15,
                     what="radsecproxy started again", logs=site.read_logs)
    assert again != first
    assert re.search(r"radsecproxy to \S+ died \(exit -9\); restarting", site.read_logs())
    result = wait_for(lambda: _check_in(site), what="a check-in through the new radsecproxy",
                      logs=site.read_logs)
    assert result["login"] == "ivan@acme.example", result


def _proxy_pid(conf: str) -> int | None:
    """The pid of the radsecproxy running with ``conf``, if one is."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if conf.encode() in argv and state != "Z":
            return int(entry.name)
    return None


def _check_in(site: Site) -> dict[str, object] | None:
    try:
        return site.control.check_in(CLIENT, "ivan@acme.example", seed.PASSWORD, False)
    except Exception:
        time.sleep(0.5)
        return None


def _sessions(factory: sessionmaker[DB]) -> list[Radacct]:
    with factory() as s:
        return list(s.scalars(select(Radacct).where(Radacct.username == "ivan@acme.example")))
