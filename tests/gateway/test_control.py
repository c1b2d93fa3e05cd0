"""The control interface: JSON over a Unix socket, hostile input included."""

from __future__ import annotations

import grp
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passerelle.gateway.control import ControlClient, ControlError, ControlServer
from passerelle.gateway.daemon import Refused
from passerelle.gateway.service import _Portal
from passerelle.refusal import Refusal


class FakeBox:
    """A stand-in for the daemon: the transport is what is under test here."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def status(self) -> dict[str, Any]:
        return {"sessions": 0}

    def who(self, ip: str) -> dict[str, Any]:
        self.calls.append(("who", ip))
        return {"ip": ip, "mac": None, "session": None}

    def sessions(self) -> list[dict[str, Any]]:
        return []

    def check_in(self, ip: str, login: str, password: str, chap: bool) -> dict[str, Any]:
        self.calls.append(("check_in", ip, login, password, str(chap)))
        if password != "right":
            raise ControlError.refused(Refusal.bad_credentials, "wrong login or password")
        return {"session_id": "S1"}

    def check_out(self, ip: str) -> dict[str, Any]:
        raise RuntimeError("boom")

    # The rest of the Backend protocol: no test here calls it.
    def key_of(self, ip: str) -> dict[str, Any]:
        raise NotImplementedError

    def rotate_key(self, ip: str) -> dict[str, Any]:
        raise NotImplementedError

    def offer(self, ip: str) -> dict[str, Any]:
        raise NotImplementedError

    def check_in_by_key(self, ip: str) -> dict[str, Any]:
        raise NotImplementedError


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ControlClient, FakeBox, Path]]:
    box = FakeBox()
    path = tmp_path / "control.sock"
    server = ControlServer(path, box)
    server.start()
    yield ControlClient(path, timeout=5), box, path
    server.stop()


def test_calls_round_trip(served: tuple[ControlClient, FakeBox, Path]) -> None:
    client, box, path = served
    assert oct(path.stat().st_mode & 0o777) == "0o660"
    assert client.status() == {"sessions": 0}
    assert client.who("198.51.100.10")["ip"] == "198.51.100.10"
    assert client.check_in("198.51.100.10", "alice", "right") == {"session_id": "S1"}
    assert box.calls[-1] == ("check_in", "198.51.100.10", "alice", "right", "False")


def test_refusals_and_errors_are_answers_not_crashes(
        served: tuple[ControlClient, FakeBox, Path]) -> None:
    client, _, _ = served
    with pytest.raises(ControlError) as err:
        client.check_in("198.51.100.10", "alice", "wrong")
    assert (err.value.status, err.value.code) == (403, "bad-credentials")
    assert err.value.refusal is Refusal.bad_credentials, "the code is read back as the refusal"
    with pytest.raises(ControlError) as err:
        client.check_out("198.51.100.10")
    assert (err.value.status, err.value.code) == (500, "internal")
    assert err.value.refusal is None, "the socket's own error is no refusal"
    bad: list[tuple[dict[str, Any], int]] = [
        ({"ip": "x", "login": "a" * 300, "password": "p"}, 400),
        ({"ip": "x", "login": "a\x00b", "password": "p"}, 400),
        ({"ip": "x", "login": "", "password": "p"}, 400),
        ({"ip": 5, "login": "a", "password": "p"}, 400)]
    for body, code in bad:
        with pytest.raises(ControlError) as err:
            client.call("POST", "/v1/check-in", body)
        assert err.value.status == code
    with pytest.raises(ControlError) as err:
        client.call("GET", "/v2/anything")
    assert err.value.status == 404
    assert client.status() == {"sessions": 0}  # still serving


def test_garbage_on_the_socket(served: tuple[ControlClient, FakeBox, Path]) -> None:
    client, _, path = served
    for raw in (b"POST /v1/check-in HTTP/1.1\r\nContent-Length: 5\r\n\r\n{{{{{",
                b"POST /v1/check-in HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                b"\x00\xff garbage\r\n\r\n"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(raw)
            answer = sock.recv(4096)
        # The request line of the last one is not HTTP: the answer is HTTP/0.9 style.
        assert b"400" in answer or b"413" in answer, answer
        assert b"500" not in answer
    assert client.status() == {"sessions": 0}


class _Refusing:
    """A daemon that refuses every call of the portal with ``refusal``."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal

    def _refuse(self, *args: Any) -> Any:
        raise Refused(self.refusal, f"refused {' '.join(map(str, args))}")

    status = sessions = who = check_in = check_out = _refuse
    key_of = rotate_key = offer = check_in_by_key = _refuse


@pytest.mark.parametrize("refusal", list(Refusal))
def test_the_daemon_s_refusal_becomes_its_status_and_code(refusal: Refusal) -> None:
    portal = _Portal(_Refusing(refusal))
    with pytest.raises(ControlError) as err:
        portal.who("198.51.100.10")
    assert (err.value.status, err.value.code) == (refusal.status, refusal.value)
    assert err.value.refusal is refusal and str(err.value) == "refused 198.51.100.10"


# The system's Python: another user may not reach the project's virtualenv.
PYTHON = "/usr/bin/python3"
CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused")
else:
    print("connected")
"""


def test_the_socket_is_reachable_by_its_group_only() -> None:
    if os.geteuid() != 0 or not Path(PYTHON).exists():
        pytest.skip("needs root (and /usr/bin/python3) to run a caller as another user")
    group = grp.getgrnam("www-data" if _has_group("www-data") else "daemon").gr_gid
    nobody = 65534
    # A folder every user may cross (pytest's own tmp folder is root's only).
    folder = Path(tempfile.mkdtemp(prefix="control-"))
    folder.chmod(0o755)
    server = ControlServer(folder / "control.sock", FakeBox(), group=group)
    server.start()
    try:
        stat = (folder / "control.sock").stat()
        assert (stat.st_mode & 0o777, stat.st_gid) == (0o660, group)

        def caller(*extra: int) -> str:
            return subprocess.run([PYTHON, "-c", CONNECT, str(folder / "control.sock")],
                                  user=nobody, group=nobody, extra_groups=list(extra),
                                  capture_output=True, text=True, check=False,
                                  timeout=30).stdout.strip()

        assert caller() == "refused", "a user outside the group"
        assert caller(group) == "connected", "a user in the socket's group"
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
