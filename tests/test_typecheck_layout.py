"""mypy sees the three parts under the names the distribution gives them
(passerelle.radius, ...), through the links in typecheck/passerelle/, so a
type error across parts is reported instead of hidden behind an
unresolved import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINKS = ROOT / "typecheck" / "passerelle"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def parts() -> dict[str, str]:
    """The subpackages mapped to a folder of their own: name -> folder."""
    mapped = pyproject()["tool"]["setuptools"]["package-dir"]
    return {name.removeprefix("passerelle."): folder
            for name, folder in mapped.items() if name != "passerelle"}


def test_every_part_is_linked_and_checked_under_its_installed_name() -> None:
    files = pyproject()["tool"]["mypy"]["files"]
    assert parts(), "package-dir maps no part"
    for name, folder in parts().items():
        link = LINKS / name
        assert link.is_symlink(), f"typecheck/passerelle/{name} is not a link"
        assert link.resolve() == (ROOT / folder).resolve()
        assert f"typecheck/passerelle/{name}" in files
        # Listed under both paths, each file would have two module names.
        assert folder not in files


def test_the_link_folder_holds_only_the_parts() -> None:
    # An __init__.py here would give the package passerelle a second file.
    assert sorted(p.name for p in LINKS.iterdir()) == sorted(parts())


def test_mypy_reports_a_type_error_across_parts(tmp_path: Path) -> None:
    (tmp_path / "wrong.py").write_text(
        "from passerelle.radius.codec import MIN_SECRET\n\nx: str = MIN_SECRET\n")
    (tmp_path / "right.py").write_text(
        "from passerelle.radius.codec import MIN_SECRET\n\nx: int = MIN_SECRET\n")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary",
         str(tmp_path / "wrong.py"), str(tmp_path / "right.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, run.stdout + run.stderr
    assert errors[0].startswith(f"{tmp_path / 'wrong.py'}:3: error: Incompatible types")
