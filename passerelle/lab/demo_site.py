"""A whole site on this machine, for `passerelle demo --site`.

The lab's namespaces (passerelle.lab.netns) play the site: a laptop on the
LAN (its resolver the box, as after DHCP), the box, and the internet with
its web host. The centre answers from the internet side (192.0.2.10) on the
demo's database; the box is the demo network's Barchon gateway (the
unstaffed site, open around the clock), moved to the lab's WAN address; the
portal runs on the box. A demo access point of the private SSID asks the
box for personal keys; its requests come from the laptop's namespace, so
radclient run there plays it. Everything is removed when the demo stops. Every
command ``how_to`` prints runs as printed, as root, from a new terminal
(see passerelle.radius.demo_cli).
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import select

from passerelle.errors import UserError
from passerelle.gateway.control import ControlClient, ControlError
from passerelle.radius import db, passwords
from passerelle.radius.demo_cli import PASSERELLE as BIN
from passerelle.radius.demo_cli import PROMPT, passerelle_command
from passerelle.radius.models import Gateway

from .netns import Lab, missing

CENTRE = "192.0.2.10"
GATEWAY = "barchon-gw"
# The demo access point (a demo secret, like the people's passwords).
AP_SECRET = "demo-ap-secret-2024"
WIFI_SSID = "Passerelle-Private"
AP_PORT = 1812

CONFIG = """\
# The demo site's box (see docs/gateway.md for every key).
[box]
identifier = "{identifier}"
state_dir = "{state}"

[portal]
ssid = "Passerelle Barchon"
site_name = "Barchon"
# The demo shows the portal over plain HTTP (its pages say so); a real site
# serves check-in and keys over HTTPS only (docs/portal.md).
allow_plain_http = true

[[radius.servers]]
host = "{centre}"
secret = "{secret}"

[radius]
timeout = 1.0
dead_time = 5

[sessions]
sweep_interval = 2

# The private SSID, and a demo access point whose requests come from the
# laptop's namespace (docs/keys.md).
[wifi]
ssid = "{wifi_ssid}"
port = {ap_port}

[[access_points]]
address = "{ap_address}"
secret = "{ap_secret}"
vendor = "hostapd"
"""


@dataclass
class RunningSite:
    """The demo's site in its namespaces: its box and portal running."""

    lab: Lab
    config: Path
    control: Path
    logs: Path
    db_url: str
    screenshot: Path

    def close(self) -> None:
        self.lab.close()


def _box_secret(url: str, wan_ip: str) -> str:
    """Point the demo's Barchon gateway at the lab's box; return its secret."""
    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as s, s.begin():
            gw = s.scalar(select(Gateway).where(Gateway.identifier == GATEWAY))
            if gw is None:
                raise UserError(f"the demo database has no gateway {GATEWAY}: load the demo "
                                "data (passerelle demo-data)")
            clash = s.scalar(select(Gateway).where(Gateway.ip_address == wan_ip,
                                                   Gateway.id != gw.id))
            if clash is not None:
                raise UserError(f"gateway {clash.identifier} already uses {wan_ip}")
            gw.ip_address = wan_ip
            return gw.secret
    finally:
        engine.dispose()


def _wait_for_box(control: ControlClient, proc_log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            control.status()
            return
        except (OSError, ControlError):
            time.sleep(0.2)
    raise UserError(f"the box did not start; its log:\n{proc_log.read_text()[-3000:]}")


def start(url: str, data: Path) -> RunningSite:
    why = missing()
    if why:
        raise UserError(f"the site demo cannot run here: {why}")
    lab = Lab()
    try:
        secret = _box_secret(url, lab.wan_ipv4)
        site_dir = data / "site"
        site_dir.mkdir(parents=True, exist_ok=True)
        config = site_dir / "gateway.toml"
        config.write_text(CONFIG.format(identifier=GATEWAY, state=site_dir / "state",
                                        centre=CENTRE, secret=secret, wifi_ssid=WIFI_SSID,
                                        ap_port=AP_PORT, ap_address=lab.ipv4["client"],
                                        ap_secret=AP_SECRET))
        lab.run("up", "ip", "addr", "add", f"{CENTRE}/32", "dev", "lo")
        # The centre's Disconnect-Requests leave from the address the box knows.
        lab.run("up", "ip", "route", "replace", "203.0.113.0/24", "dev", "eth0", "src", CENTRE)
        lab.start_internet()
        logs = site_dir / "logs"
        logs.mkdir(exist_ok=True)

        def log(name: str) -> IO[str]:
            return (logs / f"{name}.log").open("w")

        env = {**os.environ}
        with log("centre") as out:
            lab.popen("up", str(BIN), "radius", "serve", "--db", url, "--listen", CENTRE,
                      env=env, stdout=out, stderr=out)
        with log("gateway") as out:
            lab.popen("gw", str(BIN), "gateway", "run", "--config", str(config), env=env,
                      stdout=out, stderr=out)
        control = site_dir / "state" / "control.sock"
        _wait_for_box(ControlClient(control, 5), logs / "gateway.log", time.monotonic() + 30)
        with log("portal") as out:
            lab.popen("gw", str(BIN), "portal", "run", "--config", str(config), env=env,
                      stdout=out, stderr=out)
        try:
            lab.wait_listening("gw", 8080, timeout=60)
        except AssertionError:
            raise UserError("the portal did not start; its log:\n"
                            + (logs / "portal.log").read_text()[-3000:]) from None
    except BaseException:
        lab.close()
        raise
    return RunningSite(lab, config, control, logs, url, site_dir / "portal.png")


def how_to(site: RunningSite) -> str:
    lab = site.lab
    client, up = lab.ns["client"], lab.ns["up"]
    bin_ = passerelle_command()
    sock = shlex.quote(str(site.control))
    db_arg = shlex.quote(site.db_url)
    sessions = f"{bin_} gateway sessions --socket {sock}"
    first_session = f"$({sessions} | awk 'NR == 1 {{print $1}}')"
    # The centre's key opens the gateways' sealed secrets.
    key = shlex.quote(str(passwords.key_path()))
    # What hostapd (macaddr_acl=2, wpa_psk_radius=2) asks for a joining station:
    # here the laptop, by the MAC it checked in with.
    bare = lab.mac["client"].replace(":", "")
    station = lab.mac["client"].replace(":", "-").upper()
    join = (f'User-Name = "{bare}", User-Password = "{bare}", '
            f'Calling-Station-Id = "{station}", '
            f'Called-Station-Id = "02-AA-00-00-00-01:{WIFI_SSID}", '
            'NAS-Port-Type = Wireless-802.11, NAS-Identifier = "demo-ap", '
            "Message-Authenticator = 0x00")
    radius = f"{lab.box_ipv4}:{AP_PORT}"
    return "\n".join([
        "",
        "The demo site (network namespaces, removed when the demo stops):",
        f"  {client}: a laptop, 198.51.100.10 on the site's LAN, the box as its DNS",
        f"  {lab.ns['gw']}: the box (LAN 198.51.100.1, WAN 203.0.113.2), its portal on :8080/:8443",
        f"  {up}: the internet, web host 192.0.2.80, the centre on {CENTRE}",
        f"  access point: radius {radius} secret {AP_SECRET} ssid {WIFI_SSID}",
        f"    (a demo access point of the private SSID; its requests come from {client})",
        f"  logs: {site.logs}",
        "",
        "As root, from another terminal:",
        "  # captive: plain HTTP is redirected to the portal, HTTPS refused at once",
        f"{PROMPT}ip netns exec {client} curl -si http://192.0.2.80/ "
        "| grep -i -e ^HTTP -e ^Location",
        f"{PROMPT}ip netns exec {client} curl -s -m 3 https://192.0.2.80/ || echo refused",
        "  # following the redirect: the laptop finds the portal through the box's DNS",
        f"{PROMPT}ip netns exec {client} curl -sL http://192.0.2.80/ | grep '<h1'",
        "  # the portal in a real browser, as a screenshot",
        f"{PROMPT}ip netns exec {client} chromium --headless --no-sandbox --log-level=3 "
        f"--screenshot={shlex.quote(str(site.screenshot))} http://192.0.2.80/",
        "  # check in as the portal would (password on stdin), then the web is there",
        f"{PROMPT}echo demo-wifi-2024 | {bin_} gateway check-in 198.51.100.10 "
        f"alice@acme.example --socket {sock}",
        f"{PROMPT}ip netns exec {client} curl -s http://192.0.2.80/",
        f"{PROMPT}{sessions}",
        "  # the access point asks the box for the key of a station joining the private",
        "  # SSID: Access-Accept, the checked-in person's key in Tunnel-Password",
        f"{PROMPT}echo '{join}' | ip netns exec {client} radclient -x {radius} auth "
        f"{AP_SECRET}",
        "  # central ops cut the session (RFC 5176 Disconnect-Request to the box):",
        "  # the laptop is captive again",
        f"{PROMPT}ip netns exec {up} env PASSERELLE_KEY_FILE={key} {bin_} radius disconnect "
        f'"{first_session}" --db {db_arg}',
        f"{PROMPT}ip netns exec {client} curl -si http://192.0.2.80/ | head -1",
        "",
    ])
