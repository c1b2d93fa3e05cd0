"""What an operator sees: the pure rule every query of the console applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from passerelle.radius.models import OperatorRole


@dataclass(frozen=True)
class Principal:
    """The signed-in operator, as the console knows them for one request."""

    id: int
    login: str
    name: str
    role: OperatorRole
    epoch: int
    company_id: int | None = None
    company_name: str = ""
    site_ids: frozenset[int] = frozenset()

    @property
    def scope(self) -> Scope:
        match self.role:
            case OperatorRole.network_ops:
                return Scope()
            case OperatorRole.site_manager:
                return Scope(sites=self.site_ids)
            case OperatorRole.company_manager:
                # A company manager is never without a company (a CHECK says so).
                return Scope(company=self.company_id if self.company_id is not None else -1)
        assert_never(self.role)


@dataclass(frozen=True)
class Scope:
    """None is "no limit": network ops see every site and company."""

    sites: frozenset[int] | None = None
    company: int | None = None

    @property
    def everything(self) -> bool:
        return self.sites is None and self.company is None
