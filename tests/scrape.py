"""Reading a Prometheus page the way Prometheus does, for the metrics tests,
and the metric names the Grafana dashboard asks for."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "passerelle.json"


_SUFFIXES = {"counter": ("", "_total"), "histogram": ("", "_bucket", "_count", "_sum")}


class Page:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.families: set[str] = set()
        for family in text_string_to_metric_families(text):
            # A family is exposed (HELP, TYPE) before it has samples: a
            # labelled counter gets its first when the first event comes.
            self.families |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        found = self.get(name, **labels)
        assert found is not None, f"no sample {name}{labels} in:\n{self.text}"
        return found

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def names(self) -> set[str]:
        """Every sample name (``x_total``, ``x_bucket``, ...) and the names of
        each family's samples to come."""
        return {n for n, _ in self.samples} | self.families


def parse(text: str) -> Page:
    return Page(text)


def scrape(url: str) -> Page:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return Page(answer.read().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dashboard_metrics(prefix: str) -> set[str]:
    """The metric names the dashboard's queries use that start with ``prefix``."""
    exprs = [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"]
             for t in panel.get("targets", [])]
    return {name for expr in exprs for name in re.findall(r"\b(passerelle_[a-z0-9_]+)", expr)
            if name.startswith(prefix)}
