"""The repository stands on its own: no tracked Markdown or Python file
points at notes kept outside it (whoever picks the project up later will
not have them). What the code relies on is written in docs/, e.g.
docs/protocols.md for the protocol facts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Spelt in pieces so that this file does not trip its own check.
FORBIDDEN = ("PROTOCOLS" + ".md", ".." + "/shared", "ARCHITECTURE" + ".md", "STYLE" + ".md")


def offences(text: str) -> list[str]:
    """The forbidden references ``text`` contains (case-sensitive: our own
    docs/protocols.md is fine)."""
    return [needle for needle in FORBIDDEN if needle in text]


def tracked(*patterns: str) -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(["git", "ls-files", "-z", "--", *patterns], cwd=ROOT, check=True,
                         capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name]


def test_the_check_catches_each_reference() -> None:
    assert offences("see PROTOCOLS" + ".md, section 2") == ["PROTOCOLS" + ".md"]
    assert offences("(.." + "/shared/STYLE" + ".md)") == [".." + "/shared", "STYLE" + ".md"]
    assert offences("see shared/ARCHITECTURE" + ".md") == ["ARCHITECTURE" + ".md"]
    assert offences("docs/protocols.md, RFC 2865 section 3") == []


def test_no_tracked_doc_or_source_cites_files_outside_the_repository() -> None:
    files = tracked("*.md", "*.py")
    assert "docs/protocols.md" in files and "tests/test_docs.py" in files
    found: dict[str, list[str]] = {}
    for name in files:
        path = ROOT / name
        if not path.exists():  # deleted in the work tree, not yet committed
            continue
        hits = offences(path.read_text(encoding="utf-8"))
        if hits:
            found[name] = hits
    assert not found, f"files citing notes outside the repository: {found}"
