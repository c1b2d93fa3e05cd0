"""A private FreeRADIUS 3 (Debian) for interoperability tests.

Copies /etc/freeradius/3.0 into a temporary directory, keeps the stock
modules and policies, and replaces what the test needs: one client
(127.0.0.1), a users file, one virtual server on 127.0.0.1 with free ports,
accounting written to a detail file the test reads. It runs as
``freeradius -f -d DIR`` (never -X: debug mode changes timing), waits until
it answers a Status-Server, and is always stopped.

Debian 12's FreeRADIUS 3.2.1 sends no Message-Authenticator in PAP/CHAP
replies unless a policy adds one; ``reply_ma=True`` adds one in post-auth
(FreeRADIUS then puts it last, not first, which is still valid).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyrad import packet as rp

from passerelle.radius import codec
from passerelle.radius.messages import Code
from tests.need import stop, unavailable

STOCK = Path("/etc/freeradius/3.0")
SECRET = "fr-interop-secret"
PASSWORD = "wilma rocks"


def need_freeradius() -> str:
    path = shutil.which("freeradius") or (
        "/usr/sbin/freeradius" if os.access("/usr/sbin/freeradius", os.X_OK) else None)
    why = ""
    if path is None:
        why = "freeradius not installed (apt-get install freeradius)"
    elif not STOCK.is_dir():
        why = f"{STOCK} is missing"
    elif not os.access(STOCK / "radiusd.conf", os.R_OK):
        why = f"cannot read {STOCK} to copy it (run as root or in group freerad)"
    if why:
        unavailable(why)
    assert path is not None
    return path


USERS = """\
fred\tCleartext-Password := "{password}"
\tSession-Timeout = 3600,
\tIdle-Timeout = 600,
\tAcct-Interim-Interval = 120,
\tClass = 0x667265642d636c6173730001ff,
\tTunnel-Type:1 = VLAN,
\tTunnel-Medium-Type:1 = IEEE-802,
\tTunnel-Private-Group-Id:1 = "42",
\tTunnel-Password:1 = "fred-personal-wifi-key",
\tWISPr-Bandwidth-Max-Up = 2000000,
\tWISPr-Bandwidth-Max-Down = 8000000,
\tReply-Message = "welcome fred"

mallory\tAuth-Type := Reject
\tReply-Message = "account-disabled: mallory is locked out"
"""

SITE = """\
server passerelle_interop {{
    listen {{
        type = auth
        ipaddr = {listen}
        port = {auth}
    }}
    listen {{
        type = acct
        ipaddr = {listen}
        port = {acct}
    }}
    authorize {{
        preprocess
        chap
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
        Auth-Type CHAP {{
            chap
        }}
    }}
    preacct {{
        preprocess
        acct_unique
    }}
    accounting {{
        interop_detail
        ok
    }}
    post-auth {{
{post_auth}
        Post-Auth-Type REJECT {{
{post_auth}
        }}
    }}
}}
"""

DETAIL = """\
detail interop_detail {{
    filename = {path}
    escape_filenames = no
    permissions = 0600
    header = "%t"
    locking = no
}}
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FreeRadius:
    directory: Path
    auth_port: int
    acct_port: int
    secret: bytes
    proc: subprocess.Popen[bytes]
    log: Path
    detail: Path
    _read: int = field(default=0)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def accounting(self) -> list[dict[str, str]]:
        """Every Accounting-Request FreeRADIUS wrote to its detail file."""
        if not self.detail.exists():
            return []
        records: list[dict[str, str]] = []
        for block in re.split(r"\n\s*\n", self.detail.read_text()):
            attrs: dict[str, str] = {}
            for line in block.splitlines():
                if line.startswith("\t") and " = " in line:
                    name, _, value = line.strip().partition(" = ")
                    attrs[name] = value.strip('"')
            if attrs:
                records.append(attrs)
        return records

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop(self.proc)


def _ready_in_log(log: Path, deadline: float, proc: subprocess.Popen[bytes]) -> bool:
    """Inside a namespace the test cannot send it a probe: read its log."""
    while time.monotonic() < deadline and proc.poll() is None:
        if "Ready to process requests" in log.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _ready(port: int, secret: bytes, deadline: float, proc: subprocess.Popen[bytes]) -> bool:
    """Poll with Status-Server until FreeRADIUS answers (or dies)."""
    pkt = rp.AuthPacket(code=Code.STATUS_SERVER, secret=secret,
                        dict=codec.dictionary())
    pkt.add_message_authenticator()
    pkt.AddAttribute("NAS-Identifier", "readiness-probe")
    data = pkt.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                sock.send(data)
                sock.settimeout(0.2)
                sock.recv(4096)
                return True
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.1)
    return False


def start(tmp: Path, *, reply_ma: bool = False, require_ma: bool = False,
          listen: str = "127.0.0.1", client: str = "127.0.0.1",
          netns: str | None = None) -> FreeRadius:
    """``netns``: run it inside that network namespace (the lab's centre),
    listening on ``listen`` (ports 1812/1813) for the NAS at ``client``."""
    binary = need_freeradius()
    raddb = tmp / "raddb"
    shutil.copytree(STOCK, raddb, symlinks=True)
    for name in ("log", "run", "radacct"):
        (tmp / name).mkdir()
    conf = (raddb / "radiusd.conf").read_text()
    replacements = {
        r"(?m)^raddbdir = .*$": f"raddbdir = {raddb}",
        r"(?m)^logdir = .*$": f"logdir = {tmp / 'log'}",
        r"(?m)^run_dir = .*$": f"run_dir = {tmp / 'run'}",
        r"(?m)^radacctdir = .*$": f"radacctdir = {tmp / 'radacct'}",
        # Run as whoever runs the tests: the copy lives in their private tmp.
        r"(?m)^(\s*)(user|group) = .*$": r"\1# \2 dropped for tests",
        r"(?m)^(\s*)reject_delay = .*$": r"\1reject_delay = 0",
    }
    for pattern, repl in replacements.items():
        conf, count = re.subn(pattern, repl, conf)
        if not count:
            raise RuntimeError(f"radiusd.conf: {pattern} not found")
    (raddb / "radiusd.conf").write_text(conf)
    # EAP wants certificates the stock copy does not have; the test needs none.
    (raddb / "mods-enabled" / "eap").unlink()
    for site in (raddb / "sites-enabled").iterdir():
        site.unlink()
    auth, acct = (1812, 1813) if netns else (_free_udp_port(), _free_udp_port())
    post_auth = ("            update reply {\n"
                 "                Message-Authenticator := 0x00\n"
                 "            }") if reply_ma else "            ok"
    (raddb / "sites-enabled" / "passerelle").write_text(
        SITE.format(auth=auth, acct=acct, post_auth=post_auth, listen=listen))
    detail = tmp / "radacct" / "detail"
    (raddb / "mods-enabled" / "interop_detail").write_text(DETAIL.format(path=detail))
    (raddb / "clients.conf").write_text(
        "client gateway {\n"
        f"    ipaddr = {client}\n"
        f"    secret = {SECRET}\n"
        f"    require_message_authenticator = {'yes' if require_ma else 'no'}\n"
        "    shortname = axis-gw\n"
        "}\n")
    users = raddb / "mods-config" / "files" / "authorize"
    users.write_text(USERS.format(password=PASSWORD))
    log = tmp / "freeradius.log"
    with log.open("wb") as out:
        wrap = ["ip", "netns", "exec", netns] if netns else []
        proc = subprocess.Popen([*wrap, binary, "-f", "-d", str(raddb), "-l", "stdout"],
                                stdout=out, stderr=subprocess.STDOUT)
    server = FreeRadius(raddb, auth, acct, SECRET.encode(), proc, log, detail)
    deadline = time.monotonic() + 20
    ready = (_ready_in_log(log, deadline, proc) if netns
             else _ready(auth, SECRET.encode(), deadline, proc))
    if not ready:
        server.stop()
        raise RuntimeError(f"FreeRADIUS did not start:\n{server.logs()}")
    return server


@pytest.fixture(scope="module", name="freeradius")
def freeradius_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    """One FreeRADIUS per test module (it takes a second to start)."""
    server = start(tmp_path_factory.mktemp("freeradius"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="freeradius_with_ma")
def freeradius_with_ma_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    """FreeRADIUS with a post-auth policy that signs every reply."""
    server = start(tmp_path_factory.mktemp("freeradius-ma"), reply_ma=True)
    try:
        yield server
    finally:
        server.stop()
