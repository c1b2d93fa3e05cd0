"""Issue 13, finding 18: what is installed is exactly what the hashed lock
names, and the lock satisfies pyproject's floors (raised past the known
advisories). That the lock installs on Python 3.11 is shown by
deploy/test.sh itself, which installs from it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "requirements.lock"


def locked() -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes it has."""
    found: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9._-]+)==([^ \\]+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            found[name] = (Version(pin.group(2)), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"not a pinned, hashed requirement: {line!r}")
    return found


def test_every_dependency_is_pinned_with_hashes_within_its_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in
              project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = locked()
    assert all(hashes >= 1 for _, hashes in pins.values()), pins
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in the lock"
        assert req.specifier.contains(pins[name][0], prereleases=True), (req, pins[name])


def test_the_floors_are_past_the_advisories() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors: dict[str, Requirement] = {
        canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    for name, too_old in (("flask", "3.0.3"), ("werkzeug", "3.1.3"), ("jinja2", "3.1.5"),
                          ("cryptography", "44.0.0")):
        assert not floors[name].specifier.contains(too_old), floors[name]


def test_venv_installs_from_the_lock_only() -> None:
    script = (ROOT / "deploy" / "venv.sh").read_text()
    assert "pip install -q --require-hashes -r deploy/requirements.lock" in script
    assert "pip install -q --no-deps -e ." in script
