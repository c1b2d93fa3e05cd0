"""The pure parts: Wi-Fi QR payload and SVG, limits, the way on, TLS, settings."""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from passerelle.errors import UserError
from passerelle.gateway.config import Interfaces, parse
from passerelle.portal import origin, tls, wifiqr
from passerelle.portal.limits import Limiter
from passerelle.portal.probes import host_name, probe
from passerelle.portal.settings import PortalSettings

# --- Wi-Fi QR -----------------------------------------------------------------


@pytest.mark.parametrize(("ssid", "key", "expected"), [
    ("Passerelle", "abcdefgh", "WIFI:T:WPA;S:Passerelle;P:abcdefgh;;"),
    ('a;b,c:d"e\\f', "k;e,y", 'WIFI:T:WPA;S:a\\;b\\,c\\:d\\"e\\\\f;P:k\\;e\\,y;;'),
    ("Café ☕", "x y", "WIFI:T:WPA;S:Café ☕;P:x y;;"),
])
def test_wifi_payload_escapes_the_special_characters(ssid: str, key: str,
                                                     expected: str) -> None:
    assert wifiqr.payload(ssid, key) == expected


def _cells_of(svg: str) -> set[tuple[int, int]]:
    cells = set()
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", svg):
        cells |= {(int(x) + i, int(y)) for i in range(int(w))}
    return cells


def test_svg_draws_exactly_the_qr_matrix_of_the_payload() -> None:
    data = wifiqr.payload("Passerelle", 'k;"<&>')
    svg = wifiqr.svg(data, "join <Passerelle> & go")
    matrix = wifiqr.matrix(data)
    dark = {(x, y) for y, row in enumerate(matrix) for x, on in enumerate(row) if on}
    assert _cells_of(svg) == dark and len(dark) > 200
    assert f'viewBox="0 0 {len(matrix)} {len(matrix)}"' in svg
    assert "<title id=\"qr-title\">join &lt;Passerelle&gt; &amp; go</title>" in svg
    assert "style=" not in svg, "the CSP forbids inline styles"


def test_a_different_key_draws_a_different_code() -> None:
    one = wifiqr.svg(wifiqr.payload("P", "key-one-1"), "t")
    two = wifiqr.svg(wifiqr.payload("P", "key-two-2"), "t")
    assert _cells_of(one) != _cells_of(two)


# --- limits ---------------------------------------------------------------------

def test_limiter_counts_failures_in_a_sliding_window() -> None:
    limits = Limiter(max_failures=3, window=60)
    for t in (0, 10, 20):
        assert limits.retry_after("k", t) == 0
        limits.failed("k", t)
    assert limits.retry_after("k", 30) == 30  # the first failure leaves the window at 60
    assert limits.retry_after("other", 30) == 0
    assert limits.retry_after("k", 60) == 0
    limits.failed("k", 61)
    assert limits.retry_after("k", 62) == 8  # failures at 10, 20, 61: 10 leaves at 70


def test_limiter_success_forgets_and_memory_is_bounded() -> None:
    limits = Limiter(max_failures=1, window=60, max_keys=100)
    limits.failed("k", 0)
    assert limits.retry_after("k", 1) > 0
    limits.succeeded("k")
    assert limits.retry_after("k", 1) == 0
    for i in range(1000):
        limits.failed(f"login{i}", 1)
    assert limits.retry_after("login999", 2) > 0 and limits.retry_after("login0", 2) == 0


# --- the way on and hosts ---------------------------------------------------------

def test_original_url_only_for_plausible_hosts() -> None:
    assert origin.original_url("example.org", "/a?b=1") == "http://example.org/a?b=1"
    assert origin.original_url("example.org:8080", "/") == "http://example.org:8080/"
    assert origin.original_url("[2001:db8::1]", "/x") == "http://[2001:db8::1]/x"
    assert origin.original_url("example.org", "/?") == "http://example.org/"
    for host in ("", "a b", "ex@mple.org", "example.org/x", "x" * 300, "a..b"):
        assert origin.original_url(host, "/") is None, host
    assert origin.original_url("example.org", "/" + "a" * 3000) is None
    assert origin.original_url("example.org", "/a\nb") is None


def test_tokens_round_trip_and_expire() -> None:
    token = origin.sign(b"secret", "http://example.org/x")
    assert origin.unsign(b"secret", token) == "http://example.org/x"
    assert origin.unsign(b"other", token) is None
    assert origin.unsign(b"secret", token, max_age=-1) is None
    assert origin.unsign(b"secret", None) is None
    for url in ("javascript:alert(1)", "http://user:pw@example.org/", "ftp://example.org/",
                "http://exa mple.org/"):
        assert origin.unsign(b"secret", origin.sign(b"secret", url)) is None, url


def test_local_paths() -> None:
    assert origin.is_local_path("/status?x=1")
    for path in ("//evil", "/\\evil", "http://x/", "", "/a b", "/\u00e9"):
        assert not origin.is_local_path(path), path


def test_probe_host_names() -> None:
    assert host_name("Captive.Apple.com.:80") == "captive.apple.com"
    assert host_name("[2001:db8::1]:8080") == "[2001:db8::1]"
    assert probe("www.msftncsi.com", "/ncsi.txt") is not None
    assert probe("www.msftncsi.com", "/other") is None


# --- TLS ------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_self_signed_certificate_is_made_once_for_the_hostname(tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate("portal.example", tmp_path / "state", now=NOW)
    made = _cert(cert)
    san = made.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["portal.example"]
    assert made.not_valid_after_utc - NOW == tls.LIFETIME
    assert key.stat().st_mode & 0o777 == 0o600
    again, _ = tls.ensure_certificate("portal.example", tmp_path / "state", now=NOW)
    assert _cert(again).serial_number == made.serial_number, "kept across restarts"
    renamed, _ = tls.ensure_certificate("other.example", tmp_path / "state", now=NOW)
    assert _cert(renamed).serial_number != made.serial_number, "remade for a new name"
    late = NOW + tls.LIFETIME - dt.timedelta(days=10)
    renewed, _ = tls.ensure_certificate("other.example", tmp_path / "state", now=late)
    assert _cert(renewed).not_valid_after_utc > late + dt.timedelta(days=800)


def test_a_configured_pair_is_used_as_is(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    with pytest.raises(UserError, match="does not exist"):
        tls.ensure_certificate("p.example", tmp_path, cert, key)
    made_cert, made_key = tls.make_self_signed("p.example", NOW)
    cert.write_bytes(made_cert)
    key.write_bytes(made_key)
    assert tls.ensure_certificate("p.example", tmp_path / "s", cert, key) == (cert, key)
    assert not (tmp_path / "s").exists()


def test_a_client_validating_the_certificate_connects(tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate("portal.example", tmp_path)
    server_ctx = tls.server_context(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.sendall(b"hello")

    thread = threading.Thread(target=answer)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            client_ctx.wrap_socket(raw, server_hostname="portal.example") as conn:
        assert conn.recv(5) == b"hello"
    thread.join(5)
    listener.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        wrong = ssl.create_default_context(cafile=str(cert))
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        thread = threading.Thread(target=lambda: _accept_tls(listener, server_ctx))
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw:
                wrong.wrap_socket(raw, server_hostname="not-the-portal.example")
        finally:
            thread.join(5)
            listener.close()


def _accept_tls(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    conn, _ = listener.accept()
    try:
        ctx.wrap_socket(conn, server_side=True).close()
    except (ssl.SSLError, OSError):
        conn.close()


def test_a_bad_key_pair_is_a_one_line_error(tmp_path: Path) -> None:
    cert, _ = tls.ensure_certificate("a.example", tmp_path / "a")
    _, other_key = tls.ensure_certificate("b.example", tmp_path / "b")
    with pytest.raises(UserError, match="cannot load"):
        tls.server_context(cert, other_key)


# --- settings from the box's configuration --------------------------------------------

CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "state"
[lan]
interface = "lan"
address = "198.51.100.1/24"
[wan]
interface = "wan"
[portal]
hostname = "portal.axis.example"
https_port = 443
ssid = "Axis"
site_name = "Axis Parc"
venue_url = "https://axis.example/"
{extra}
[[radius.servers]]
host = "192.0.2.10"
secret = "s3cret-for-tests"
"""


def _settings(tmp_path: Path, extra: str = "") -> PortalSettings:
    interfaces = Interfaces("wan", ("lan", "wan"), {"lan": ("198.51.100.1/24",)})
    return PortalSettings.from_config(parse(CONFIG.format(extra=extra), tmp_path, interfaces))


def test_settings_from_the_gateway_config(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert (s.hostname, s.ssid, s.site_name, s.box_ipv4) == (
        "portal.axis.example", "Axis", "Axis Parc", "198.51.100.1")
    assert s.secure_url == "https://portal.axis.example/"
    assert s.portal_url == "https://portal.axis.example/", "HTTPS unless plain HTTP is allowed"
    assert s.allow_plain_http is False
    assert s.api_path == "/api/captive"
    assert s.own_hosts == ("portal.axis.example", "198.51.100.1")
    real = _settings(tmp_path, 'cert_file = "c.pem"\nkey_file = "k.pem"')
    assert real.portal_url == "https://portal.axis.example/"
    plain = _settings(tmp_path, "allow_plain_http = true")
    assert plain.allow_plain_http and plain.portal_url == "http://portal.axis.example/"
    both = _settings(tmp_path, 'allow_plain_http = true\ncert_file = "c.pem"\nkey_file = "k.pem"')
    assert both.portal_url == "https://portal.axis.example/", "a trusted certificate: HTTPS"


def test_settings_with_an_ipv6_lan(tmp_path: Path) -> None:
    text = CONFIG.format(extra="").replace('address = "198.51.100.1/24"',
                                           'address = "198.51.100.1/24"\n'
                                           'address6 = "2001:db8:1::1/64"')
    interfaces = Interfaces("wan", ("lan", "wan"), {"lan": ("198.51.100.1/24",)})
    s = PortalSettings.from_config(parse(text, tmp_path, interfaces))
    assert s.box_ipv6 == "2001:db8:1::1"
    assert s.own_hosts == ("portal.axis.example", "198.51.100.1", "[2001:db8:1::1]")


# --- the command ----------------------------------------------------------------------


def test_portal_run_with_a_missing_certificate_is_a_one_line_error(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner

    from passerelle.portal.cli import register

    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(extra='cert_file = "nope.pem"\nkey_file = "nope.key"')
                      .replace('[wan]\ninterface = "wan"', '[wan]\ninterface = "wan"\n')
                      .replace('identifier = "axis-gw"', 'identifier = "axis-gw"\n'
                               'nas_ip = "203.0.113.2"'))
    root = click.Group("passerelle")
    register(root)
    result = CliRunner().invoke(root, ["portal", "run", "--config", str(config)])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == f"portal certificate: {tmp_path / 'nope.pem'} does not exist"


# --- the server's admission -----------------------------------------------------------


def test_admission_caps_per_address_and_in_all() -> None:
    from passerelle.portal.server import Admission

    caps = Admission(per_address=2, total=3)
    assert caps.admit("198.51.100.10") and caps.admit("198.51.100.10")
    assert not caps.admit("198.51.100.10"), "over the address's cap"
    assert caps.admit("198.51.100.11")
    assert not caps.admit("198.51.100.12"), "over the cap in all"
    caps.release("198.51.100.10")
    assert caps.admit("198.51.100.12") and not caps.admit("198.51.100.10")
    for address in ("198.51.100.10", "198.51.100.11", "198.51.100.12"):
        caps.release(address)
    assert caps.admit("198.51.100.10") and caps.admit("198.51.100.10")


def test_the_portal_reads_no_radius_secret(tmp_path: Path) -> None:
    from passerelle.gateway.config import ConfigError

    text = CONFIG.format(extra="").replace('secret = "s3cret-for-tests"',
                                           'secret_file = "root-only.secret"')
    interfaces = Interfaces("wan", ("lan", "wan"), {"lan": ("198.51.100.1/24",)})
    with pytest.raises(ConfigError, match="secret_file"):
        parse(text, tmp_path, interfaces)
    config = parse(text, tmp_path, interfaces, read_secrets=False)
    assert PortalSettings.from_config(config).hostname == "portal.axis.example"


def test_the_certificate_goes_to_the_portal_s_own_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from passerelle.portal.cli import certificate_dir

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert certificate_dir(tmp_path / "box") == tmp_path / "box"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/passerelle-portal:/var/lib/other")
    assert certificate_dir(tmp_path / "box") == Path("/var/lib/passerelle-portal")


# --- the systemd units: who runs what ---------------------------------------------------

UNITS = Path(__file__).parents[2] / "deploy" / "systemd"


def _service(name: str) -> dict[str, str]:
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    # Keys keep their case (the documented way; typeshed declares a method).
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNITS / name)
    return dict(unit["Service"])


def test_the_portal_runs_as_its_own_user_without_capabilities() -> None:
    portal = _service("passerelle-portal.service")
    assert (portal["User"], portal["Group"]) == ("passerelle-portal", "passerelle-portal")
    assert portal["CapabilityBoundingSet"] == "" and portal["NoNewPrivileges"] == "yes"
    assert portal["StateDirectory"] == "passerelle-portal", "for its self-signed certificate"


def test_the_daemon_keeps_only_the_network_capabilities() -> None:
    gateway = _service("passerelle-gateway.service")
    assert set(gateway["CapabilityBoundingSet"].split()) == {
        "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"}
    # Its control socket (0660) gets the portal's group, and nobody else's.
    assert gateway["Group"] == "passerelle-portal" and gateway["UMask"] == "0077"
