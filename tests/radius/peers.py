"""Ways to talk to the server under test: FreeRADIUS's radclient (the
interoperability peer) and a raw UDP client for crafted packets."""

from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import dataclass, field

from pyrad import packet as rp

from passerelle.radius import codec
from tests.need import tool


def need_radclient() -> str:
    return tool("radclient", "freeradius-utils")


@dataclass
class Answer:
    code: str | None  # "Access-Accept", ..., None when no reply
    attrs: list[tuple[str, str]] = field(default_factory=list)
    output: str = ""

    def get(self, name: str) -> list[str]:
        return [v for k, v in self.attrs if k == name]

    def one(self, name: str) -> str:
        values = self.get(name)
        assert len(values) == 1, (name, self.attrs)
        return values[0]


def radclient(port: int, kind: str, secret: str, attrs: str, *, timeout: float = 1.5,
              retries: int = 1, extra: tuple[str, ...] = ()) -> Answer:
    """Send one request with radclient and parse what it received."""
    cmd = [need_radclient(), "-x", "-r", str(retries), "-t", str(timeout), *extra,
           f"127.0.0.1:{port}", kind, secret]
    out = subprocess.run(cmd, input=attrs, capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    match = re.search(r"^Received (\S+) Id", text, re.M)
    if not match:
        return Answer(None, output=text)
    received = text[match.end():]
    attr_list = []
    for line in received.splitlines()[1:]:
        if not line.startswith("\t"):
            break
        name, _, value = line.strip().partition(" = ")
        attr_list.append((name, value.strip('"')))
    return Answer(match.group(1), attr_list, text)


class RawClient:
    """Crafted packets over a real UDP socket, for what radclient won't send."""

    def __init__(self, port: int, secret: bytes) -> None:
        self.port = port
        self.secret = secret
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))

    def close(self) -> None:
        self.sock.close()

    def access_request(self, user: str, password: str | bytes | None = None, *,
                       ma: bool = True, secret: bytes | None = None,
                       **attrs: object) -> rp.AuthPacket:
        pkt = rp.AuthPacket(secret=secret or self.secret, dict=codec.dictionary())
        pkt.id = pkt.CreateID()
        pkt.authenticator = pkt.CreateAuthenticator()
        if ma:
            pkt.add_message_authenticator()
        pkt.AddAttribute("User-Name", user)
        pkt.AddAttribute("NAS-Identifier", "axis-gw")
        if password is not None:
            pkt.AddAttribute("User-Password", pkt.PwCrypt(password))
        for name, value in attrs.items():
            pkt.AddAttribute(name.replace("_", "-"), value)
        return pkt

    def accounting_request(self, status: str, session: str, *, secret: bytes | None = None,
                           **attrs: object) -> rp.AcctPacket:
        pkt = rp.AcctPacket(secret=secret or self.secret, dict=codec.dictionary())
        pkt.id = pkt.CreateID()
        pkt.AddAttribute("Acct-Status-Type", status)
        if session:
            pkt.AddAttribute("Acct-Session-Id", session)
        pkt.AddAttribute("NAS-Identifier", "axis-gw")
        for name, value in attrs.items():
            pkt.AddAttribute(name.replace("_", "-"), value)
        return pkt

    def send_raw(self, data: bytes, timeout: float = 1.0) -> bytes | None:
        self.sock.send(data)
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096)
        except (TimeoutError, ConnectionRefusedError):
            return None

    def exchange(self, pkt: rp.Packet, timeout: float = 1.0) -> tuple[bytes, rp.Packet | None]:
        """Send ``pkt``; return the bytes sent and the verified reply (or None)."""
        data = pkt.RequestPacket()
        raw = self.send_raw(data, timeout)
        if raw is None:
            return data, None
        reply = pkt.CreateReply(packet=raw)
        assert pkt.VerifyReply(reply, raw), "reply does not verify"
        return data, reply
