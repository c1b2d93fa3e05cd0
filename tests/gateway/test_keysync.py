"""The box's copy of the personal keys (gateway/keysync.py): the pure merge
of a pull, the encrypted file, and over real HTTP and UDP the promise of
issue 14: a key rotated or revoked at the centre is refused by the box's
access-point server after one pull, the new key accepted (radclient as the
access point, decoding the reply itself)."""

from __future__ import annotations

import ipaddress
import logging
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker
from werkzeug.serving import make_server

from passerelle.gateway import sessions as sm
from passerelle.gateway.ap_server import ApServer
from passerelle.gateway.clients import Clients
from passerelle.gateway.config import ConfigError, parse
from passerelle.gateway.daemon import Daemon
from passerelle.gateway.keysync import (
    KeySync,
    PersonalKey,
    SyncError,
    kept_bindings,
    merge,
    signature,
)
from passerelle.gateway.peers import AccessPoint, Vendor
from passerelle.gateway.radclient import RadiusClient
from passerelle.gateway.service import Box
from passerelle.gateway.session_table import SessionTable
from passerelle.gateway.spool import Spool
from passerelle.portal.console.app import create_app
from passerelle.radius import keys
from passerelle.radius import messages as m
from passerelle.radius.db import make_sessionmaker, transaction
from tests.gateway.test_ap_server import GOOD, SSID, STATION, _ask, _attrs, _hostapd, _send
from tests.gateway.test_ap_server import MACHINE as AP_MACHINE
from tests.gateway.test_ap_server import SECRET as AP_SECRET
from tests.gateway.test_daemon_executor import MACHINE, RecordingFirewall
from tests.radius import seed

NOW = datetime(2026, 12, 1, 10, 0, 0)


def _key(key_id: int, login: str = "alice@acme.example", serial: int = 1) -> PersonalKey:
    return PersonalKey(key_id, login, serial, f"key-{key_id:04d}-passphrase", SSID, "00" * 32)


def _doc(cursor: int, allowed: dict[int, int | None], fresh: list[PersonalKey]) -> dict:
    return {"cursor": cursor, "ssid": SSID,
            "allowed": {str(k): v for k, v in allowed.items()},
            "keys": [{"id": k.id, "login": k.login, "serial": k.serial,
                      "passphrase": k.passphrase, "ssid": k.ssid, "pmk": k.pmk}
                     for k in fresh]}


# -- the pure merge ------------------------------------------------------------------

def test_merge_adds_drops_and_follows_the_vlan() -> None:
    held = {1: _key(1), 2: _key(2, "bob@slowco.example")}
    merged = merge(held, _doc(3, {2: 102, 3: 101}, [_key(3, serial=2)]))
    assert sorted(merged.keys) == [2, 3] and merged.keys[2].vlan == 102
    assert (merged.cursor, merged.added, merged.dropped, merged.missing) == (3, 1, 1,
                                                                           frozenset())


def test_merge_names_a_key_allowed_but_never_received() -> None:
    merged = merge({}, _doc(9, {5: None}, []))
    assert merged.missing == frozenset({5}) and merged.keys == {}


@pytest.mark.parametrize("doc", [{}, {"cursor": "x", "allowed": {}, "keys": []},
                                 {"cursor": 1, "allowed": [], "keys": [{}]}])
def test_merge_refuses_what_is_not_a_pull(doc: dict) -> None:
    with pytest.raises(ValueError, match="not a key pull"):
        merge({}, doc)


def test_bindings_to_keys_no_longer_held_go() -> None:
    assert kept_bindings({"02:00:00:00:00:01": "1", "02:00:00:00:00:02": "7"},
                         {1: _key(1)}) == {"02:00:00:00:00:01": "1"}


# -- the file ------------------------------------------------------------------------------

def test_the_file_is_encrypted_private_and_read_back(tmp_path: Path) -> None:
    state = tmp_path / "keys" / "keys.enc"
    ks = KeySync("http://192.0.2.1", "axis-gw", b"s3cret-for-tests", state,
                 tmp_path / "keys" / "box.key")
    ks._keys = {1: _key(1)}
    ks.cursor = 1
    ks.bindings = {"02:00:00:00:00:01": "1", "02:00:00:00:00:09": "9"}
    ks.save()
    raw = state.read_bytes()
    assert b"passphrase" not in raw and b"key-0001" not in raw and b"alice" not in raw
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "box.key").stat().st_mode) == 0o600
    again = KeySync("http://192.0.2.1", "axis-gw", b"s3cret-for-tests", state,
                    tmp_path / "keys" / "box.key")
    again.load()
    assert again.keys() == [_key(1)] and again.cursor == 1
    # The binding to a key no longer held is dropped on reading.
    assert again.bindings == {"02:00:00:00:00:01": "1"}


def test_a_file_that_does_not_open_is_said_and_left(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "keys" / "keys.enc"
    state.parent.mkdir()
    state.write_bytes(b"not a Fernet token")
    ks = KeySync("http://192.0.2.1", "axis-gw", b"s", state, tmp_path / "keys" / "box.key")
    with caplog.at_level(logging.WARNING, "passerelle.gateway"):
        ks.load()
    assert ks.keys() == [] and "does not open with the box key" in caplog.text


def test_an_unreachable_centre_is_one_clear_error(tmp_path: Path) -> None:
    # Port 9 on the loopback: nothing listens (connection refused at once).
    ks = KeySync("http://127.0.0.1:9", "axis-gw", b"s", tmp_path / "k" / "keys.enc",
                 tmp_path / "k" / "box.key", timeout=2)
    with pytest.raises(SyncError, match="unreachable"):
        ks.sync()


# -- the configuration ----------------------------------------------------------------

CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "state"
[[radius.servers]]
host = "192.0.2.10"
secret = "s3cret-for-tests"
"""


def test_config_keys_section(tmp_path: Path) -> None:
    config = parse(CONFIG + '[keys]\nurl = "https://centre.example/"\ninterval = 20\n',
                   tmp_path, MACHINE)
    assert (config.keys_url, config.keys_interval) == ("https://centre.example", 20.0)
    assert config.keys_path == tmp_path / "state" / "keys" / "keys.enc"
    assert config.keys_key_file == tmp_path / "state" / "keys" / "box.key"
    assert parse(CONFIG, tmp_path, MACHINE).keys_url == ""


@pytest.mark.parametrize("section, words", [
    ('url = "ftp://centre.example"', "is not an http(s)://host/ URL"),
    ('url = "http://centre.example"', "plain HTTP"),
    ('url = "https://centre.example/?x=1"', "no query"),
    ('url = "https://centre.example"\ninterval = 0', "keys.interval"),
    ('url = "https://centre.example"\nca_file = "nope.pem"', "keys.ca_file: no such file"),
    ('colour = "blue"', "keys.colour: unknown key"),
])
def test_config_keys_mistakes_are_named(tmp_path: Path, section: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        parse(CONFIG + "[keys]\n" + section + "\n", tmp_path, MACHINE)


# -- centre -> box -> access point, over real HTTP and UDP -----------------------------

@dataclass
class Centre:
    factory: sessionmaker[DB]
    world: seed.World
    url: str


@dataclass
class Site:
    factory: sessionmaker[DB]
    world: seed.World
    keysync: KeySync
    daemon: Daemon
    ap: ApServer


@pytest.fixture
def centre(engine: Engine, key_file: Path) -> Iterator[Centre]:
    """The seed world with keys for alice, bob and frank, and the console
    serving the boxes' channel over HTTP on the loopback."""
    factory = make_sessionmaker(engine)
    world = seed.build(factory)
    with transaction(factory) as db:
        for name in ("alice", "bob", "frank"):
            keys.issue_if_missing(db, world.people[name], NOW)
    http = make_server("127.0.0.1", 0, create_app(factory), threaded=True)
    serving = threading.Thread(target=http.serve_forever, daemon=True)
    serving.start()
    try:
        yield Centre(factory, world, f"http://127.0.0.1:{http.server_port}")
    finally:
        http.shutdown()


@pytest.fixture
def site(centre: Centre, tmp_path: Path) -> Iterator[Site]:
    config = parse(CONFIG, tmp_path, MACHINE)
    ks = KeySync(centre.url, "axis-gw", seed.SECRET.encode(),
                 tmp_path / "keys" / "keys.enc", tmp_path / "keys" / "box.key")
    daemon = Daemon(config, firewall=RecordingFirewall([]),
                    radius=cast(RadiusClient, None), clients=cast(Clients, None),
                    spool=Spool(tmp_path / "spool.db"),
                    store=SessionTable(tmp_path / "sessions.db"))
    daemon.personal_keys = ks
    ap = ApServer("127.0.0.1", 0, [AccessPoint(ipaddress.ip_network("127.0.0.0/8"),
                                               AP_SECRET, Vendor.HOSTAPD)],
                  daemon, ssid=SSID, refresh_interval=0.05)
    try:
        yield Site(centre.factory, centre.world, ks, daemon, ap)
    finally:
        ap.stop()
        daemon.store.close()


def _current(site: Site, name: str) -> str:
    with transaction(site.factory) as db:
        key = keys.current(db, site.world.people[name])
        assert key is not None
        return key.passphrase


def _taken(site: Site) -> None:
    """The AP server takes the held keys every 50 ms."""
    time.sleep(0.3)


@pytest.mark.integration
def test_rotation_and_revocation_reach_the_box_in_one_pull(site: Site) -> None:
    alice, bob, frank = (_current(site, n) for n in ("alice", "bob", "frank"))
    site.keysync.sync()
    site.ap.start()
    answer = _send(site.ap, _attrs(handshake=alice))
    assert answer.code == "Access-Accept", answer.output
    assert answer.one("Tunnel-Password:0") == alice  # decrypted by radclient
    assert answer.one("Tunnel-Private-Group-Id:1") == "101"  # Acme's VLAN
    assert _send(site.ap, _attrs(handshake=bob)).code == "Access-Accept"
    # frank's plan does not include this site's category: the box never holds his key.
    assert _send(site.ap, _attrs(handshake=frank)).code == \
        "Access-Reject"

    with transaction(site.factory) as db:
        keys.rotate(db, site.world.people["alice"], NOW)
        keys.revoke(db, site.world.people["bob"], NOW)
    new = _current(site, "alice")
    site.keysync.sync()
    _taken(site)
    assert _send(site.ap, _attrs(handshake=alice)).code == "Access-Reject"
    # The bindings learned for the old keys went with them: MAC alone is refused too.
    assert _send(site.ap, _attrs()).code == "Access-Reject"
    assert _send(site.ap, _attrs(handshake=bob)).code == "Access-Reject"
    answer = _send(site.ap, _attrs(handshake=new))
    assert answer.code == "Access-Accept" and answer.one("Tunnel-Password:0") == new


@pytest.mark.integration
def test_the_box_answers_from_its_file_while_the_centre_is_away(site: Site,
                                                                tmp_path: Path) -> None:
    alice = _current(site, "alice")
    site.keysync.sync()
    # A restart with the centre unreachable: the file's keys serve.
    away = KeySync("http://127.0.0.1:9", "axis-gw", seed.SECRET.encode(),
                   tmp_path / "keys" / "keys.enc", tmp_path / "keys" / "box.key", timeout=1)
    away.load()
    with pytest.raises(SyncError):
        away.sync()
    site.daemon.personal_keys = away
    site.ap.start()
    assert _send(site.ap, _attrs(handshake=alice)).code == "Access-Accept"


@pytest.mark.integration
def test_the_check_in_mac_and_a_first_check_in_before_the_pull(site: Site) -> None:
    alice = _current(site, "alice")
    site.keysync.sync()
    mac = "02:11:22:33:44:55"
    # Typed at check-in as the person likes; the centre stores one form.
    session, actions = sm.check_in("S1", " Alice@ACME.example", mac, "198.51.100.10",
                                   sm.Terms(session_timeout=3600), time.time())
    site.daemon._carry_out(session, actions)
    # Ivan checks in for the first time: his key is not pulled yet.
    ivan, ivan_actions = sm.check_in("S2", "ivan@acme.example", "02:11:22:33:44:66",
                                     "198.51.100.11", sm.Terms(session_timeout=3600),
                                     time.time() + 5)
    site.daemon._keys["S2"] = "ivans-first-key-1"
    site.daemon._carry_out(ivan, ivan_actions)
    held = {k.person: k for k in site.daemon.keys_for_ap()}
    assert held["alice@acme.example"].mac == mac
    assert held["alice@acme.example"].passphrase == alice
    assert held["ivan@acme.example"].passphrase == "ivans-first-key-1"
    # After a pull asked later than his check-in, the centre's word is final.
    site.keysync.pulled_at = time.time() + 10
    assert "ivan@acme.example" not in {k.person for k in site.daemon.keys_for_ap()}


@pytest.mark.integration
def test_the_box_keeps_its_device_bindings_across_a_restart(centre: Centre,
                                                            tmp_path: Path) -> None:
    """service.Box: the pull wired to the access points' server, the
    bindings saved with the keys and given back to the server at start."""
    alice = _current(Site(centre.factory, centre.world, cast(KeySync, None),
                          cast(Daemon, None), cast(ApServer, None)), "alice")
    text = (GOOD.replace('"s3cret-for-tests"', f'"{seed.SECRET}"')
            + f'[keys]\nurl = "{centre.url}"\nallow_plain_http = true\n')
    (tmp_path / "ap.secret").write_text("cisco-secret-0123456789\n")
    box = Box(parse(text, tmp_path, AP_MACHINE))
    try:
        assert box.keysync is not None and box.gateway.personal_keys is box.keysync
        assert box.access_points is not None
        box.restore_keys()
        box._pull_keys()  # the timer's first run, at start
        box.access_points.core.refresh()
        reply = _ask(box.access_points.core, _hostapd(handshake=alice),
                     secret=b"0123456789abcdef0123", source=("198.51.100.17", 1812))
        assert isinstance(reply, m.AccessAccept) and reply.tunnel_passwords == (alice,)
        assert STATION in box.access_points.core.bindings
        box._pull_keys()  # the timer: the binding is written with the keys
    finally:
        box.store.close()
    again = Box(parse(text, tmp_path, AP_MACHINE))
    try:
        assert again.access_points is not None
        again.restore_keys()
        assert STATION in again.access_points.core.bindings
        again.access_points.core.refresh()
        # hostapd 2.10 asks by MAC only: the binding of the last run answers.
        reply = _ask(again.access_points.core, _hostapd(),
                     secret=b"0123456789abcdef0123", source=("198.51.100.17", 1812))
        assert isinstance(reply, m.AccessAccept) and reply.tunnel_passwords == (alice,)
    finally:
        again.store.close()


@pytest.mark.integration
def test_two_equal_pulls_in_one_second_are_not_a_replay(site: Site) -> None:
    second = float(int(time.time()))
    site.keysync.clock = lambda: second  # every request signed in the same second
    for _ in range(3):  # the 2nd and 3rd ask the same: only the nonce tells them apart
        site.keysync.sync()


def test_the_signature_is_hmac_sha256_over_method_path_time_and_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret-for-tests", b"POST\n/box/v1/keys\n1800000000\n{}",
                        hashlib.sha256).hexdigest()
    assert signature(b"s3cret-for-tests", "post", "/box/v1/keys", "1800000000", b"{}") == expected
    assert signature(b"s3cret-for-tests", "POST", "/box/v1/keys", "1800000001", b"{}") != expected


@pytest.mark.integration
def test_the_access_points_keys_are_built_again_only_when_they_change(site: Site) -> None:
    """The AP server takes keys_for_ap every second: with nothing changed it
    gets the same list back, which its ring does not read again."""
    site.keysync.sync()
    first = site.daemon.keys_for_ap()
    assert site.daemon.keys_for_ap() is first
    site.keysync.sync()  # a pull that brings nothing new
    assert site.daemon.keys_for_ap() is first

    with transaction(site.factory) as db:  # a pull that does
        keys.rotate(db, site.world.people["alice"], NOW)
    site.keysync.sync()
    pulled = site.daemon.keys_for_ap()
    assert pulled is not first
    assert _current(site, "alice") in {k.passphrase for k in pulled}

    # A check-in gives its owner's key a MAC; a first check-in brings its key.
    alice, actions = sm.check_in("S1", "alice@acme.example", "02:11:22:33:44:55",
                                 "198.51.100.10", sm.Terms(session_timeout=3600), time.time())
    site.daemon._carry_out(alice, actions)
    checked_in = site.daemon.keys_for_ap()
    assert {k.person: k.mac for k in checked_in}["alice@acme.example"] == "02:11:22:33:44:55"
    ivan, actions = sm.check_in("S2", "ivan@acme.example", "02:11:22:33:44:66",
                                "198.51.100.11", sm.Terms(session_timeout=3600),
                                time.time() + 5)
    site.daemon._keys["S2"] = "ivans-first-key-1"
    site.daemon._carry_out(ivan, actions)
    first_key = site.daemon.keys_for_ap()
    assert {k.person: k.passphrase for k in first_key}["ivan@acme.example"] == \
        "ivans-first-key-1"
    assert site.daemon.keys_for_ap() is first_key
    site.daemon._keys["S2"] = "ivans-other-key-2"  # as rotate_key sets it
    assert {k.person: k.passphrase for k in site.daemon.keys_for_ap()}[
        "ivan@acme.example"] == "ivans-other-key-2"
    # A pull asked after his check-in (same keys): the centre's word is final.
    site.keysync.pulled_at = time.time() + 10
    assert "ivan@acme.example" not in {k.person for k in site.daemon.keys_for_ap()}
    # Another source of pulled keys, at the same generation and pull, holding none.
    other = KeySync("http://127.0.0.1:9", "axis-gw", seed.SECRET.encode(),
                    site.keysync.path.with_name("other.enc"),
                    site.keysync.path.with_name("other.key"))
    other.generation, other.pulled_at = site.keysync.generation, site.keysync.pulled_at
    site.daemon.personal_keys = other
    assert site.daemon.keys_for_ap() == []
