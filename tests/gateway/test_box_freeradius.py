"""Interoperability: the box with FreeRADIUS 3 (Debian) as its centre.

The contract between box and centre is plain RADIUS, so the same check-in,
accounting and Disconnect flow must work against any standard server. Here
FreeRADIUS runs in the lab's up namespace (192.0.2.10) with a users file
(tests/peers/freeradius.py) and signs its replies with Message-Authenticator
(a post-auth policy; Debian 12's 3.2.1 does not by default), so the box keeps
its default of requiring it. Disconnect-Requests come from FreeRADIUS's own
radclient.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from passerelle.gateway.control import ControlError
from tests.boxlab import CENTRE, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.peers import freeradius
from tests.radius.peers import need_radclient


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    need_radclient()
    with site(tmp_path_factory.mktemp("box-fr"), centre="freeradius") as built:
        yield built


def records(box: Box, session_id: str) -> list[dict[str, str]]:
    assert box.freeradius is not None
    return [r for r in box.freeradius.accounting() if r.get("Acct-Session-Id") == session_id]


def test_check_in_accounting_and_check_out(box: Box) -> None:
    with pytest.raises(ControlError) as refused:
        box.control.check_in("198.51.100.10", "mallory", "anything")
    assert refused.value.code == "account-disabled"
    with pytest.raises(ControlError) as refused:
        box.control.check_in("198.51.100.10", "fred", "not his password")
    assert refused.value.status == 403

    result = box.control.check_in("198.51.100.10", "fred", freeradius.PASSWORD)
    assert result["wifi_key"] == "fred-personal-wifi-key"
    assert 3590 <= result["seconds_left"] <= 3600
    assert result["credit_seconds_left"] is None, "a plain centre tells no credit"
    assert result["bandwidth_down"] == 8_000_000
    assert box.curl("client") == "upstream 203.0.113.2"
    (start,) = wait_for(lambda: records(box, result["session_id"]), what="Start at FreeRADIUS",
                        logs=box.read_logs)
    assert start["Acct-Status-Type"] == "Start"
    assert start["User-Name"] == "fred" and start["NAS-Identifier"] == "axis-gw"
    assert start["Class"] == "0x667265642d636c6173730001ff", "Class echoed unmodified"
    assert start["Framed-IP-Address"] == "198.51.100.10"

    box.control.check_out("198.51.100.10")
    assert box.curl("client").startswith("portal")
    stop = wait_for(lambda: [r for r in records(box, result["session_id"])
                             if r["Acct-Status-Type"] == "Stop"], what="Stop")[0]
    assert stop["Acct-Terminate-Cause"] == "User-Request"
    assert int(stop["Acct-Input-Octets"]) > 0 and int(stop["Acct-Output-Octets"]) > 0
    assert stop["Class"] == start["Class"]


def test_radclient_disconnect_request_cuts_the_session(box: Box) -> None:
    result = box.control.check_in("198.51.100.10", "fred", freeradius.PASSWORD)
    assert box.curl("client") == "upstream 203.0.113.2"
    request = (f'Acct-Session-Id = "{result["session_id"]}"\n'
               f"Event-Timestamp = {int(time.time())}\n"
               "Message-Authenticator = 0x00\n")
    out = box.lab.run("up", "radclient", "-x", "-r", "2", "-t", "2",
                      f"{box.lab.wan_ipv4}:3799", "disconnect", freeradius.SECRET,
                      input=request, check=False)
    assert "Received Disconnect-ACK" in out.stdout, out.stdout + out.stderr
    assert box.curl("client").startswith("portal")
    stop = wait_for(lambda: [r for r in records(box, result["session_id"])
                             if r["Acct-Status-Type"] == "Stop"], what="Stop")[0]
    assert stop["Acct-Terminate-Cause"] == "Admin-Reset"

    stale = (f'Acct-Session-Id = "{result["session_id"]}"\n'
             f"Event-Timestamp = {int(time.time()) - 1000}\n"
             "Message-Authenticator = 0x00\n")
    out = box.lab.run("up", "radclient", "-x", "-r", "1", "-t", "1",
                      f"{box.lab.wan_ipv4}:3799", "disconnect", freeradius.SECRET,
                      input=stale, check=False)
    assert "Received" not in out.stdout, "a stale Event-Timestamp is dropped"
    gone = (f'Acct-Session-Id = "{result["session_id"]}"\n'
            f"Event-Timestamp = {int(time.time())}\n"
            "Message-Authenticator = 0x00\n")
    out = box.lab.run("up", "radclient", "-x", "-r", "1", "-t", "2",
                      f"{box.lab.wan_ipv4}:3799", "disconnect", freeradius.SECRET,
                      input=gone, check=False)
    assert "Received Disconnect-NAK" in out.stdout and "Session-Context-Not-Found" in out.stdout


def test_the_centre_address_is_the_only_dae_client(box: Box) -> None:
    """From another host of the internet, a Disconnect-Request gets nothing."""
    box.lab.run("up", "ip", "addr", "add", "192.0.2.66/32", "dev", "lo")
    result = box.control.check_in("198.51.100.10", "fred", freeradius.PASSWORD)
    request = (f'Acct-Session-Id = "{result["session_id"]}"\n'
               f"Event-Timestamp = {int(time.time())}\n"
               "Message-Authenticator = 0x00\n")
    box.lab.run("up", "ip", "route", "replace", "203.0.113.0/24", "dev", "eth0",
                "src", "192.0.2.66")
    try:
        out = box.lab.run("up", "radclient", "-x", "-r", "1", "-t", "1",
                          f"{box.lab.wan_ipv4}:3799", "disconnect", freeradius.SECRET,
                          input=request, check=False)
    finally:
        box.lab.run("up", "ip", "route", "replace", "203.0.113.0/24", "dev", "eth0",
                    "src", CENTRE)
    assert "Received" not in out.stdout
    assert box.curl("client") == "upstream 203.0.113.2", "still checked in"
    box.control.check_out("198.51.100.10")
