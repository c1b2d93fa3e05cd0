"""The lab (passerelle.lab: namespaces, the demo site) is for the demo, the
tests and the benchmarks: no product package (radius, gateway, portal)
imports it, at the top of a module or inside a function."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

PRODUCT = ("passerelle.radius", "passerelle.gateway", "passerelle.portal")
LAB = "passerelle.lab"


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name ``source`` (the text of ``module``) imports, made absolute."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def is_lab(name: str) -> bool:
    return name == LAB or name.startswith(LAB + ".")


def product_modules() -> list[tuple[str, Path, bool]]:
    found = []
    for package in PRODUCT:
        pkg = importlib.import_module(package)
        found.append((package, Path(pkg.__file__ or ""), True))
        for info in pkgutil.walk_packages(pkg.__path__, package + "."):
            spec = importlib.util.find_spec(info.name)
            assert spec is not None and spec.origin, info.name
            found.append((info.name, Path(spec.origin), info.ispkg))
    return found


def test_the_import_reader_sees_every_way_in() -> None:
    assert is_lab_imported("from passerelle.lab import netns", "passerelle.gateway.x")
    assert is_lab_imported("import passerelle.lab.demo_site", "passerelle.gateway.x")
    assert is_lab_imported("def f():\n    from ..lab import netns\n", "passerelle.gateway.x")
    assert is_lab_imported("from .. import lab", "passerelle.radius.x")
    assert is_lab_imported("from .lab import Lab", "passerelle.gateway.x") is False
    assert is_lab_imported("from passerelle.gateway import control", "passerelle.lab.x") \
        is False


def is_lab_imported(source: str, module: str, is_package: bool = False) -> bool:
    return any(is_lab(name) for name in imported(source, module, is_package))


def test_no_product_module_imports_the_lab() -> None:
    modules = product_modules()
    assert {"passerelle.gateway.daemon", "passerelle.radius.demo_cli",
            "passerelle.portal.server"} <= {name for name, _, _ in modules}
    offenders = [name for name, path, is_package in modules
                 if is_lab_imported(path.read_text(), name, is_package)]
    assert offenders == []


@pytest.mark.parametrize("entry", ["passerelle.gateway.daemon", "passerelle.gateway.cli",
                                   "passerelle.radius.server_cli", "passerelle.portal.server"])
def test_running_a_part_loads_no_lab(entry: str) -> None:
    code = (f"import sys, {entry}\n"
            f"print(sorted(m for m in sys.modules if m == {LAB!r} "
            f"or m.startswith({LAB + '.'!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
