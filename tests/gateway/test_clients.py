"""IP to MAC on the LAN: scapy watching ARP, the neighbour table, ARP probes.

The watcher must run in the box's namespace, so the checks run in a small
script there (``ip netns exec``) and print what they found.
"""

from __future__ import annotations

import json
import sys
import time

from passerelle.radius.mac import parse as normalise_mac
from tests.lab import Lab

PROBE = r"""
import json, sys, time
from passerelle.gateway.clients import Clients, neighbours
clients = Clients("lan", lambda: [])
clients.start()
time.sleep(1.5)                       # the sniffer is up
open(sys.argv[1], "w").write("ready")
deadline = time.time() + 10
while time.time() < deadline and not clients.recently_seen(
        "198.51.100.10", sys.argv[2], 30):
    time.sleep(0.1)
seen = clients.recently_seen("198.51.100.10", sys.argv[2], 30)
clients.stop()
print(json.dumps({
    "seen": seen,
    "asked": clients.ask_arp("198.51.100.11"),
    "absent": clients.ask_arp("198.51.100.99", timeout=0.5),
    "present": clients.present("198.51.100.11", sys.argv[3]),
    "gone": clients.present("198.51.100.98", sys.argv[3]),
    "neigh": neighbours("lan"),
}))
"""


def test_normalise_mac_spellings() -> None:
    for spelling in ("02:50:00:00:00:10", "02-50-00-00-00-10", "0250.0000.0010",
                     "025000000010", "02:50:00:00:00:10".upper()):
        assert normalise_mac(spelling) == "02:50:00:00:00:10"


def test_watcher_sees_arp_and_probes_answer(lab: Lab) -> None:
    ready = lab.tmp / "ready"
    proc = lab.popen("gw", sys.executable, "-c", PROBE, str(ready), lab.mac["client"],
                     lab.mac["client2"])
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists(), proc.stderr.read() if proc.stderr else ""
    # The client's first packet towards the box is an ARP request: the watcher sees it.
    lab.run("client", "curl", "-s", "-m", "2", f"http://{lab.box_ipv4}:9/", check=False)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    found = json.loads(out)
    assert found["seen"] is True
    assert found["asked"] == lab.mac["client2"]
    assert found["absent"] is None
    assert found["present"] is True and found["gone"] is False
    assert found["neigh"].get("198.51.100.10") == lab.mac["client"]


def test_arp_table_keeps_complete_entries_of_the_lan() -> None:
    from passerelle.gateway.clients import arp_table

    text = (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "198.51.100.10    0x1         0x2         02:50:00:00:00:10     *        lan\n"
        "198.51.100.11    0x1         0x0         00:00:00:00:00:00     *        lan\n"
        "203.0.113.1      0x1         0x2         02:aa:00:00:00:01     *        wan\n"
        "198.51.100.12    0x1         0x6         02:50:00:00:00:12     *        lan\n"
    )
    assert arp_table("lan", text) == {"198.51.100.10": "02:50:00:00:00:10",
                                      "198.51.100.12": "02:50:00:00:00:12"}
