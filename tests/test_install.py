"""deploy/install-box.sh and deploy/install-centre.sh in a throwaway root.

Each root starts as a fresh Debian would: root alone in /etc/passwd and
/etc/group, and the distribution's systemd units (copied from this machine's
/usr/lib/systemd/system). The installers run into it with --root and
--no-packages; then `systemd-analyze verify --root` must find nothing to say
about any unit, the files must have their owners and modes, and a second run
must change nothing, the box's configuration and state least of all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from passerelle.radius import db
from passerelle.radius.models import Operator, OperatorRole
from tests.need import tool, unavailable

REPO = Path(__file__).resolve().parent.parent
BOX = REPO / "deploy" / "install-box.sh"
CENTRE = REPO / "deploy" / "install-centre.sh"
VENV = "opt/passerelle/.venv"
MAIN = 'import sys; from passerelle.cli import main; sys.argv[0] = "passerelle"; main()'
PASSWORD = "correct horse battery"
INSTALL_TIMEOUT = 600  # a venv from the lock on two shared cores


def _need_root() -> None:
    if os.geteuid() != 0:
        unavailable("the installers run as root (useradd, chown)")


def fresh_root(path: Path) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (path / "etc" / "group").write_text("root:x:0:\n")
    units = path / "usr" / "lib" / "systemd"
    units.mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", units / "system", symlinks=True)
    return path


def install(script: Path, root: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(["bash", str(script), "--root", str(root), "--no-packages", *args],
                          input=stdin, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                          check=False, cwd="/")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def ids(root: Path, name: str, table: str = "passwd") -> int:
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"no {name} in the root's /etc/{table}")


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every file but the venv: owner, mode and content; the configuration
    and the state also their modification time (they must not be rewritten)."""
    seen: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("opt/", "usr/lib/systemd/")):
            continue
        st = path.lstat()
        data = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        # (A directory's time moves with SQLite's journal coming and going.)
        kept = st.st_mtime_ns if path.is_file() and rel.startswith(("etc/passerelle/",
                                                                    "var/lib/")) else 0
        seen[rel] = (st.st_uid, st.st_gid, st.st_mode, data, kept)
    seen["venv"] = tuple(sorted(installed(root).items()))
    return seen


def installed(root: Path) -> dict[str, str]:
    """The venv's distributions and their versions."""
    code = ("from importlib.metadata import distributions\n"
            "for d in distributions(): print(d.metadata['Name'], d.version)")
    listed = subprocess.run([str(root / VENV / "bin" / "python"), "-I", "-c", code],
                            capture_output=True, text=True, check=True).stdout
    return dict(line.lower().split(" ", 1) for line in listed.splitlines())


def verify_units(root: Path, names: list[str]) -> None:
    analyze = tool("systemd-analyze", "systemd")
    installed = sorted(p.name for p in (root / "etc" / "systemd" / "system").glob("*.service"))
    assert installed == sorted(names)
    for name in names:
        done = subprocess.run([analyze, "verify", f"--root={root}", "--man=no", name],
                              capture_output=True, text=True, check=False)
        assert (done.returncode, done.stdout + done.stderr) == (0, ""), name


def run_installed(root: Path, *args: str) -> str:
    return subprocess.run([str(root / VENV / "bin" / "python"), "-I", "-c", MAIN, *args],
                          capture_output=True, text=True, check=True, cwd="/").stdout


# --- the box -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    """A box installed, enrolled by hand (its files written as enrolment
    does), with sessions in its state directory, then installed again."""
    _need_root()
    root = fresh_root(tmp_path_factory.mktemp("box"))
    first = install(BOX, root)
    portal_gid = ids(root, "passerelle-portal", "group")
    etc = root / "etc" / "passerelle"
    (etc / "gateway.toml").write_text('[box]\nidentifier = "axis-gw"\n')
    os.chown(etc / "gateway.toml", 0, portal_gid)
    (etc / "gateway.toml").chmod(0o640)
    (etc / "radius.secret").write_text("s3cret")
    (etc / "radius.secret").chmod(0o600)
    state = root / "var" / "lib" / "passerelle-gateway"
    state.mkdir(parents=True)
    (state / "sessions.db").write_bytes(b"sessions of the clients checked in")
    before = snapshot(root)
    second = install(BOX, root)
    yield root, {"first": first, "second": second, "before": before, "after": snapshot(root)}


def test_box_units_pass_systemd_analyze_verify(box: tuple[Path, dict[str, object]]) -> None:
    root, _ = box
    verify_units(root, ["passerelle-gateway.service", "passerelle-portal.service"])


def test_box_files_have_their_owners_and_modes(box: tuple[Path, dict[str, object]]) -> None:
    root, runs = box
    assert "user passerelle-portal" in str(runs["first"])
    portal = ids(root, "passerelle-portal")
    assert portal < 1000, "a system user"
    entry = next(line for line in (root / "etc" / "passwd").read_text().splitlines()
                 if line.startswith("passerelle-portal:"))
    assert entry.endswith(":/usr/sbin/nologin")
    gid = ids(root, "passerelle-portal", "group")
    assert owner_mode(root / "etc" / "passerelle") == (0, gid, 0o750)
    for unit in ("passerelle-gateway.service", "passerelle-portal.service"):
        path = root / "etc" / "systemd" / "system" / unit
        assert owner_mode(path) == (0, 0, 0o644)
        assert path.read_text() == (REPO / "deploy" / "systemd" / unit).read_text()
    sysctl = root / "etc" / "sysctl.d" / "90-passerelle-gateway.conf"
    assert owner_mode(sysctl) == (0, 0, 0o644)
    assert "net.ipv4.ip_forward = 1" in sysctl.read_text()


def test_box_venv_runs_the_installed_package_without_the_test_tools(
        box: tuple[Path, dict[str, object]]) -> None:
    root, _ = box
    venv = root / VENV
    # The scripts name the interpreter by its path on the box, not in the root.
    assert (venv / "bin" / "passerelle").read_text().startswith(f"#!/{VENV}/bin/python")
    assert "passerelle, version 0.1.0" in run_installed(root, "--version")
    names = set(installed(root))
    assert {"passerelle", "flask", "pyrad", "sqlalchemy", "scapy"} <= names
    assert not names & {"pytest", "mypy", "ruff", "playwright"}, "test tools on a box"
    # Not editable: the code is in the venv, not read from the source tree.
    location = run_installed_python(root, "import passerelle.radius as m; print(m.__file__)")
    assert location.startswith(str(venv)), location


def run_installed_python(root: Path, code: str) -> str:
    return subprocess.run([str(root / VENV / "bin" / "python"), "-I", "-c", code],
                          capture_output=True, text=True, check=True, cwd="/").stdout.strip()


def test_box_install_twice_changes_nothing_and_keeps_config_and_state(
        box: tuple[Path, dict[str, object]]) -> None:
    _, runs = box
    before, after = runs["before"], runs["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert "etc/passerelle/gateway.toml" in after and "var/lib/passerelle-gateway/sessions.db" \
        in after
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    assert "user passerelle-portal" not in str(runs["second"]), "the user made once"


@pytest.mark.parametrize(("args", "message"), [
    (["--code", "7K3D-XQ2M-9PRT-4HBW"], "give --code and --centre together"),
    (["--centre", "https://centre.example.net"], "give --code and --centre together"),
    (["--code", "7K3D", "--centre", "https://centre.example.net", "--root", "/tmp/x"],
     "enrol on the box itself"),
    (["--frobnicate"], "unknown option --frobnicate"),
])
def test_box_installer_refuses_bad_options_before_touching_anything(
        args: list[str], message: str) -> None:
    _need_root()
    done = subprocess.run(["bash", str(BOX), "--no-packages", *args], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


# --- the centre --------------------------------------------------------------------


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    """The centre on an SQLite file in its root, with its first operator,
    then installed again (no --db-url: it keeps the database it has)."""
    _need_root()
    root = fresh_root(tmp_path_factory.mktemp("centre"))
    url = f"sqlite:///{root}/var/lib/passerelle/passerelle.db"
    first = install(CENTRE, root, "--db-url", url, "--operator", "ops@example.net",
                    stdin=PASSWORD + "\n")
    before = snapshot(root)
    second = install(CENTRE, root, "--operator", "ops@example.net")
    yield root, {"url": url, "first": first, "second": second, "before": before,
                 "after": snapshot(root)}


def test_centre_units_pass_systemd_analyze_verify(centre: tuple[Path, dict[str, object]]) -> None:
    root, _ = centre
    verify_units(root, ["passerelle-console.service", "passerelle-radius.service"])


def test_centre_files_have_their_owners_and_modes(centre: tuple[Path, dict[str, object]]) -> None:
    root, runs = centre
    uid, gid = ids(root, "passerelle"), ids(root, "passerelle", "group")
    assert owner_mode(root / "etc" / "passerelle") == (0, gid, 0o750)
    env = root / "etc" / "passerelle" / "radius.env"
    assert owner_mode(env) == (0, gid, 0o640)
    lines = env.read_text().splitlines()
    assert f"PASSERELLE_DB={runs['url']}" in lines
    assert "PASSERELLE_KEY_FILE=/etc/passerelle/server.key" in lines
    assert "PASSERELLE_DATA=/var/lib/passerelle" in lines
    key = root / "etc" / "passerelle" / "server.key"
    assert owner_mode(key) == (uid, gid, 0o600)
    assert len(key.read_bytes().strip()) == 44, "a Fernet key"
    assert owner_mode(root / "var" / "lib" / "passerelle") == (uid, gid, 0o700)


def test_centre_database_is_migrated_with_its_first_operator(
        centre: tuple[Path, dict[str, object]]) -> None:
    _, runs = centre
    engine = db.make_engine(str(runs["url"]))
    try:
        with db.make_sessionmaker(engine)() as s:
            operators = s.scalars(select(Operator)).all()
    finally:
        engine.dispose()
    assert [(o.login, o.role) for o in operators] == [("ops@example.net",
                                                       OperatorRole.network_ops)]
    assert "operator ops@example.net already there" in str(runs["second"])


def test_centre_install_twice_changes_nothing(centre: tuple[Path, dict[str, object]]) -> None:
    _, runs = centre
    before, after = runs["before"], runs["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert "etc/passerelle/server.key" in after
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    assert "environment /etc/passerelle/radius.env" not in str(runs["second"])


def test_centre_on_an_existing_postgresql_database(
        centre: tuple[Path, dict[str, object]], pg_url: str) -> None:
    root, _ = centre
    login = "second-ops@example.net"
    out = install(CENTRE, root, "--db-url", pg_url, "--operator", login, stdin=PASSWORD + "\n")
    assert f"operator '{login}' added" in out
    env = (root / "etc" / "passerelle" / "radius.env").read_text()
    assert f"PASSERELLE_DB={pg_url}\n" in env
    engine = db.make_engine(pg_url)
    try:
        with db.make_sessionmaker(engine)() as s, s.begin():
            role = s.scalar(select(Operator.role).where(Operator.login == login))
            assert role == OperatorRole.network_ops
            s.execute(delete(Operator).where(Operator.login == login))
    finally:
        engine.dispose()


def test_centre_serves_its_metrics_on_the_loopback_only(
        centre: tuple[Path, dict[str, object]]) -> None:
    root, _ = centre
    lines = (root / "etc" / "passerelle" / "radius.env").read_text().splitlines()
    # `passerelle radius serve` reads it (--metrics); never a public address.
    assert "PASSERELLE_METRICS=127.0.0.1:9465" in lines
