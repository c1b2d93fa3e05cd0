"""No secret in a repr: a value logged with %r, or shown in an error, must
not carry a shared secret, a password or its hash.

Every dataclass of the product packages is read; a field named like a
secret must be left out of the repr (``field(repr=False)``), or its class
must write its own ``__repr__``. Each is then shown to keep its secret out
of the repr it really gives."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from types import ModuleType
from typing import Any

import passerelle
from passerelle import gateway, portal, radius

SECRET_NAMES = frozenset({"secret", "password", "password_hash", "chap_secret", "passphrase",
                          "private_key", "token", "api_key"})
MARK = "s3cret-value-in-the-field"


def _modules() -> list[ModuleType]:
    found = []
    for package in (passerelle, gateway, portal, radius):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in info.name:
                found.append(importlib.import_module(info.name))
    return found


def _classes_with_secrets() -> list[type]:
    classes = {}
    for module in _modules():
        for value in vars(module).values():
            if (isinstance(value, type) and dataclasses.is_dataclass(value)
                    and value.__module__ == module.__name__
                    and any(f.name in SECRET_NAMES for f in dataclasses.fields(value))):
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return [classes[name] for name in sorted(classes)]


def _instance(cls: type) -> Any:
    # Every field given a stand-in (the secrets the mark): object.__new__
    # and the slots or __dict__ directly, so no __init__ check gets in the way.
    obj: Any = object.__new__(cls)
    for f in dataclasses.fields(cls):
        object.__setattr__(obj, f.name, MARK if f.name in SECRET_NAMES else None)
    return obj


def test_the_scan_finds_the_classes_that_hold_secrets() -> None:
    names = {cls.__qualname__ for cls in _classes_with_secrets()}
    # A few known ones: the scan must see into every package.
    assert {"RadiusServer", "AccessPoint", "Nas", "Account", "Bundle", "PersonalKey"} <= names


def test_no_dataclass_shows_a_secret_in_its_repr() -> None:
    leaks = []
    for cls in _classes_with_secrets():
        try:
            shown = repr(_instance(cls))
        except Exception:
            # A hand-written __repr__ that needs real values: it names its fields itself.
            if any(f.repr for f in dataclasses.fields(cls) if f.name in SECRET_NAMES) \
                    and cls.__repr__.__code__.co_filename == dataclasses.__file__:
                leaks.append(f"{cls.__module__}.{cls.__qualname__}")
            continue
        if MARK in shown:
            leaks.append(f"{cls.__module__}.{cls.__qualname__}")
    assert leaks == []
