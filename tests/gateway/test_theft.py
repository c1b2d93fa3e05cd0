"""Session theft by IP address, in the lab with the real daemon and portal.

A checked-in client (``client``, 198.51.100.10) stays on the LAN; a second
device (``thief``, its own MAC) takes the same address. The box's kernel then
knows the address by the thief's MAC: the daemon must not hand the thief the
victim's session (status page, login, check-out). And one device on two
addresses is shown to ops.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest

from passerelle.gateway.control import ControlError
from tests.boxlab import Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.radius import seed

VICTIM_IP = "198.51.100.10"
THIEF_MAC = "02:50:00:00:00:66"
SECOND_IP = "198.51.100.12"

# `passerelle portal run` (the portal's CLI group, registered on the root CLI).
RUN = """
import sys
from passerelle.cli import main, cli
from passerelle.portal.cli import register
register(cli)
sys.argv[0] = "passerelle"
main()
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    tmp = tmp_path_factory.mktemp("theft")
    with site(tmp, portal=False) as built:
        log = (tmp / "portal.log").open("w")
        built.logs.append(tmp / "portal.log")
        try:
            portal = built.lab.popen("gw", sys.executable, "-c", RUN, "-v", "portal", "run",
                                     "--config", str(built.config), stderr=log)
            assert portal.stdout is not None
            assert "portal listening" in portal.stdout.readline(), built.read_logs()
            yield built
        finally:
            log.close()


def portal(box: Box, role: str, *args: str, path: str = "/") -> str:
    """A page of the HTTPS portal as ``role`` sees it (its cookies kept)."""
    jar = str(box.tmp / f"{role}.cookies")
    out = box.lab.run(role, "curl", "-sS", "-k", "-m", "10", "-b", jar, "-c", jar, *args,
                      f"https://{box.lab.box_ipv4}:8443{path}", check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_second_mac_on_the_address_gets_neither_status_nor_check_out(box: Box) -> None:
    assert "Redirecting" in box.curl("client")  # the box's kernel learns the victim
    granted = box.control.check_in(VICTIM_IP, "alice@acme.example", seed.PASSWORD)
    mine = portal(box, "client")
    assert "alice@acme.example" in mine, "the victim sees their own status page"

    box.lab.add_client("thief", THIEF_MAC, VICTIM_IP)
    seen = portal(box, "thief")
    # The thief's own connection told the box's kernel its MAC for the address.
    assert box.lab.run("gw", "ip", "neigh", "show", VICTIM_IP).stdout.split()[4] == THIEF_MAC
    assert "alice@acme.example" not in seen, "the victim's login shown to another device"
    assert "Check out" not in seen
    assert "Redirecting" in box.lab.run("thief", "curl", "-s", "-m", "3", "http://192.0.2.80/",
                                        check=False).stdout, "the kernel lets it nowhere"

    # The portal's check-out, with whatever token the thief's page gave ...
    token = re.search(r'name="csrf_token" value="([^"]+)"', seen)
    portal(box, "thief", "-X", "POST", "-d", f"csrf_token={token[1] if token else ''}",
           path="/check-out")
    # ... and the daemon's own: it finds the thief's MAC on the address.
    with pytest.raises(ControlError) as refused:
        box.control.check_out(VICTIM_IP)
    assert refused.value.code == "address-taken"
    with pytest.raises(ControlError) as refused:  # its own credentials do not help
        box.control.check_in(VICTIM_IP, "bob@slowco.example", seed.PASSWORD)
    assert refused.value.code == "address-taken"
    assert [s["session_id"] for s in box.control.sessions()] == [granted["session_id"]]
    assert "address-taken" in box.read_logs(), "the daemon logs the claim"

    # The thief leaves; the victim speaks again and has its session back.
    box.lab.run("thief", "ip", "link", "set", "eth0", "down")
    # The victim asks for the box's MAC again, which tells the box its own.
    box.lab.run("client", "ip", "neigh", "flush", "dev", "eth0")
    assert "alice@acme.example" in portal(box, "client")
    box.control.check_out(VICTIM_IP)
    assert box.control.sessions() == []


def test_one_mac_on_two_addresses_is_shown_to_ops(box: Box) -> None:
    box.control.check_in(VICTIM_IP, "alice@acme.example", seed.PASSWORD)
    try:
        box.lab.run("client", "ip", "addr", "add", f"{SECOND_IP}/24", "dev", "eth0")
        box.lab.run("client", "curl", "-s", "-m", "3", "--interface", SECOND_IP,
                    f"http://{box.lab.box_ipv4}:8080/", check=False)
        (session,) = wait_for(box.control.sessions, what="the session")
        assert session["duplicate_mac"] == [SECOND_IP]
        assert box.control.status()["duplicate_macs"] == {
            box.lab.mac["client"]: sorted([VICTIM_IP, SECOND_IP])}
        wait_for(lambda: "on two addresses" in box.read_logs(), what="the WARNING line",
                 logs=box.read_logs)
    finally:
        box.lab.run("client", "ip", "addr", "del", f"{SECOND_IP}/24", "dev", "eth0",
                    check=False)
        box.control.check_out(VICTIM_IP)
