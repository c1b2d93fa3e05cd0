"""The served OpenAPI document says what the app serves, and every answer
keeps to it: Schemathesis generates calls from the document (valid and
not) and checks each answer (no 5xx, documented status, schema, type)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from .test_api import Tokens, keys  # noqa: F401  (the fixture, for Schemathesis)

# "Schema-valid data is accepted" cannot hold for rules that depend on what
# the database holds (a login taken, a name needed to create, not only to
# update): those are 4xx by design. Every other check runs.
ACCEPTED = schemathesis.checks.positive_data_acceptance
METHODS = {"get", "put", "post", "delete", "patch"}


def _operation(result: Ok[APIOperation] | Err[InvalidSchema]) -> APIOperation:
    """The operation Schemathesis read, or its reason for reading none."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_the_document_names_exactly_the_routes(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    served = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method in METHODS}
    assert served == documented


@pytest.mark.parametrize("role", ["partner", "acme"])
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_every_answer_keeps_to_the_document(app: Flask, keys: Tokens,  # noqa: F811
                                            mode: schemathesis.GenerationMode,
                                            role: str) -> None:
    """Valid calls (positive) and invalid ones (negative), as the partner
    and as a company (whose answers include the 403s and 404s)."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    auth = {"Authorization": f"Bearer {getattr(keys, role)}"}
    # The partner's token wherever Schemathesis sends one (it leaves it out
    # to check that a call without one is refused).
    operations = [_operation(result) for result in schema.get_all_operations()]
    # Every operation but the document's own (Schemathesis leaves it out).
    assert len(operations) == 11

    for operation in operations:
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def one(case: schemathesis.Case) -> None:
            headers = auth if "Authorization" in (case.headers or {}) else {}
            case.call_and_validate(headers=headers, excluded_checks=[ACCEPTED])

        one()
