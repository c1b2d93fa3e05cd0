"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Written here as data, beside the routes; tests/console/test_api_openapi.py
checks that its paths and methods are exactly the routes the app serves,
and Schemathesis checks every answer against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

JSON = "application/json"
EXTERNAL = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "Bad input (type, range, unknown field)", 401: "No live token",
             403: "Not a call this token's role may make",
             404: "Not found, or not this token's to see", 409: "Conflict",
             413: "Body too large", 415: "Not a JSON body", 422: "Refused by the data rules"}
    return {str(code): _error(words[code]) for code in (400, 401, 403, *codes)}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": EXTERNAL,
            "description": "The partner platform's id"}


PAGE = [_query("after", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
               "The `next` of the previous page (keyset paging)"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
               "Items per page (default 100)")]
RANGE = [_query("since", {"type": "string"}, "From this date or UTC time (inclusive)"),
         _query("until", {"type": "string"}, "To this date or UTC time (exclusive)")]
STAMP = _nullable("string", format="date-time")
COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    "Company": {
        "type": "object",
        "required": ["external_id", "name", "status", "payment", "categories", "services"],
        "properties": {
            "external_id": _nullable("string"), "name": {"type": "string"},
            "status": {"enum": ["active", "suspended", "closed"]},
            "payment": {"enum": ["ok", "overdue"]},
            "categories": {"type": "string", "pattern": "^[123]{1,3}$"},
            "services": {"type": "array", "items": {"type": "string"}},
            "max_session": _nullable("integer"), "bandwidth_up": _nullable("integer"),
            "bandwidth_down": _nullable("integer"), "vlan": _nullable("integer")}},
    "CompanyInput": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 128},
            "status": {"enum": ["active", "suspended", "closed"]},
            "payment": {"enum": ["ok", "overdue"]},
            "categories": {"type": "string", "examples": ["123"]},
            "services": {"type": "array", "items": {"type": "string"},
                         "examples": [["wifi", "printing"]]},
            "max_session": _nullable("integer", description="Seconds; null: no cap"),
            "bandwidth_up": _nullable("integer", description="bit/s; null: no cap"),
            "bandwidth_down": _nullable("integer", description="bit/s; null: no cap"),
            "vlan": _nullable("integer", description="1 to 4094; null: none")}},
    "Companies": {"type": "object", "required": ["items"],
                  "properties": {"items": {"type": "array", "items": _ref("Company")}}},
    "Person": {
        "type": "object", "required": ["external_id", "login", "company", "active"],
        "properties": {
            "external_id": _nullable("string"), "login": {"type": "string"},
            "name": {"type": "string"}, "company": _nullable("string"),
            "active": {"type": "boolean"}, "language": {"type": "string"},
            "balance_seconds": {"type": "integer",
                                "description": "Credit left (negative after an overrun)"}}},
    "People": {"type": "object", "required": ["items", "next"],
               "properties": {"items": {"type": "array", "items": _ref("Person")},
                              "next": _nullable("integer")}},
    "PersonInput": {
        "type": "object", "required": ["external_id"], "additionalProperties": False,
        "properties": {
            "external_id": EXTERNAL,
            "company": {**EXTERNAL, "description": "The company's external id"},
            "login": {"type": "string"}, "name": {"type": "string"},
            "password": {"type": "string", "description": "Needed to create; "
                         "given on update, it changes the password"},
            "active": {"type": "boolean"}, "language": {"enum": ["fr", "nl", "en"]}}},
    "PeopleInput": {
        "type": "object", "required": ["people"], "additionalProperties": False,
        "properties": {"people": {"type": "array", "minItems": 1, "maxItems": 500,
                                  "items": _ref("PersonInput")}}},
    "PeopleResult": {
        "type": "object", "required": ["created", "updated", "failed", "results"],
        "properties": {
            "created": COUNT, "updated": COUNT, "failed": COUNT,
            "results": {"type": "array", "items": {
                "type": "object", "required": ["external_id", "result"],
                "properties": {"external_id": _nullable("string"),
                               "result": {"enum": ["created", "updated", "failed"]},
                               "error": {"type": "string"},
                               "message": {"type": "string"}}}}}},
    "TopUpInput": {
        "type": "object", "required": ["minutes"], "additionalProperties": False,
        "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
                       "note": {"type": "string", "maxLength": 256}}},
    "TopUp": {
        "type": "object",
        "required": ["person", "entry", "added_seconds", "balance_seconds", "at"],
        "properties": {"person": _nullable("string"), "entry": {"type": "integer"},
                       "added_seconds": {"type": "integer"},
                       "balance_seconds": {"type": "integer"}, "at": STAMP}},
    "Session": {
        "type": "object",
        "required": ["id", "session_id", "login", "person", "company", "site", "started",
                     "stopped", "seconds"],
        "properties": {
            "id": {"type": "integer"}, "session_id": {"type": "string"},
            "login": {"type": "string"}, "person": _nullable("string"),
            "company": _nullable("string"), "site": _nullable("string"),
            "started": STAMP, "updated": STAMP, "stopped": STAMP, "seconds": COUNT,
            "input_octets": COUNT, "output_octets": COUNT, "mac": {"type": "string"},
            "ip": {"type": "string"}, "terminate_cause": {"type": "string"}}},
    "Sessions": {"type": "object", "required": ["items", "next"],
                 "properties": {"items": {"type": "array", "items": _ref("Session")},
                                "next": _nullable("integer", description="Give it as "
                                                  "`after` for the next page; null: the end")}},
    "Usage": {
        "type": "object",
        "required": ["person", "login", "sessions", "seconds", "credit_used_seconds"],
        "properties": {"person": _nullable("string"), "login": {"type": "string"},
                       "since": STAMP, "until": STAMP, "sessions": COUNT,
                       "seconds": COUNT, "input_octets": COUNT, "output_octets": COUNT,
                       "credit_used_seconds": {"type": "integer"}}},
    "CompanyUsage": {
        "type": "object", "required": ["company", "totals", "people"],
        "properties": {"company": _nullable("string"), "since": STAMP, "until": STAMP,
                       "totals": {"type": "object"},
                       "people": {"type": "array", "items": _ref("Usage")}}},
    "Decision": {
        "type": "object", "required": ["allowed", "reason", "seconds"],
        "properties": {
            "person": _nullable("string"), "site": {"type": "string"},
            "service": {"type": "string"}, "allowed": {"type": "boolean"},
            "reason": _nullable("string", description="A refusal code (docs/api.md)"),
            "message": _nullable("string"),
            "seconds": {"type": "integer", "minimum": 0,
                        "description": "How long the use may last if allowed"}}},
}


def _operation(summary: str, ok: tuple[str, str, str], errors: tuple[int, ...],
               parameters: list[dict[str, Any]] | None = None,
               body: str | None = None, roles: str = "partner, company") -> dict[str, Any]:
    status, description, schema = ok
    operation: dict[str, Any] = {
        "summary": summary, "description": f"Tokens: {roles}.",
        "responses": {status: _ok(description, schema), **_errors(*errors)}}
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {"required": True,
                                    "content": {JSON: {"schema": _ref(body)}}}
    return operation


@cache
def document() -> dict[str, Any]:
    company_path = [_path("ext")]
    put_company = _operation(
        "Create or update a company by its external id (idempotent)",
        ("200", "Updated", "Company"), (404, 409, 413, 415, 422), company_path,
        "CompanyInput", roles="partner")
    put_company["responses"]["201"] = _ok("Created", "Company")
    top_up = _operation(
        "Top up a person's credit, once per Idempotency-Key",
        ("201", "Added (a replay answers the first call's body again)", "TopUp"),
        (404, 409, 413, 415, 422),
        [_path("ext"), {"name": "Idempotency-Key", "in": "header", "required": True,
                        "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"},
                        "description": "The same key and body: the first answer again; "
                                       "the same key with another body: 409"}],
        "TopUpInput", roles="partner")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Passerelle partner API", "version": "1.0.0",
                 "description": "Provisioning, sessions, usage and the access policy of "
                                "the Passerelle network. See docs/api.md."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A token from `passerelle admin token add`"}}},
        "paths": {
            "/api/v1/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {JSON: {"schema": {"type": "object"}}}}}}},
            "/api/v1/companies": {"get": _operation(
                "The companies with an external id (a company token: its own)",
                ("200", "Companies", "Companies"), ())},
            "/api/v1/companies/{ext}": {
                "get": _operation("One company", ("200", "The company", "Company"), (404,),
                                  company_path),
                "put": put_company},
            "/api/v1/companies/{ext}/usage": {"get": _operation(
                "Sessions, time and credit used per person of a company",
                ("200", "Usage", "CompanyUsage"), (404,), company_path + RANGE)},
            "/api/v1/people": {
                "get": _operation(
                    "People with an external id, with their credit left",
                    ("200", "A page of people", "People"), (404,),
                    [*PAGE, _query("company", EXTERNAL, "Only this company's people")]),
                "put": _operation(
                    "Create or update people by external id, each on its own (a company "
                    "token: its company's people only)",
                    ("200", "What became of each item, in order", "PeopleResult"),
                    (413, 415), None, "PeopleInput")},
            "/api/v1/people/{ext}": {"get": _operation(
                "One person, with their credit left", ("200", "The person", "Person"),
                (404,), [_path("ext")])},
            "/api/v1/people/{ext}/usage": {"get": _operation(
                "A person's sessions, time and credit used", ("200", "Usage", "Usage"),
                (404,), [_path("ext"), *RANGE])},
            "/api/v1/people/{ext}/credit": {"post": top_up},
            "/api/v1/sessions": {"get": _operation(
                "Accounting sessions, oldest first, paged by keyset",
                ("200", "A page of sessions", "Sessions"), (404,),
                [*PAGE, _query("company", EXTERNAL, "Only this company's people"),
                 _query("person", EXTERNAL, "Only this person"),
                 _query("site", {"type": "string"}, "Only this site (its name)"), *RANGE])},
            "/api/v1/decision": {"get": _operation(
                "May this person use this service at this site now? (the Wi-Fi's policy)",
                ("200", "The answer", "Decision"), (404,),
                [{"name": "person", "in": "query", "required": True, "schema": EXTERNAL,
                  "description": "The person's external id"},
                 {"name": "site", "in": "query", "required": True,
                  "schema": {"type": "string"}, "description": "The site's name"},
                 _query("service", {"type": "string"},
                        "A service of the employer's plan (default wifi)")])},
        },
    }


@cache
def query_names(path: str, method: str) -> frozenset[str]:
    """The query parameters the document gives an operation: any other is
    refused (a mistyped filter must not silently list everything)."""
    operation = document()["paths"].get(path, {}).get(method.lower(), {})
    return frozenset(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
