"""People from CSV: the pure parse (radius/people_csv.py) with good, bad and
hostile files; then the import through the console and the command line,
on SQLite and PostgreSQL: all or nothing, every bad line reported."""

from __future__ import annotations

import codecs
import io
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.cli import main
from passerelle.portal.console.manage_people import WEB_MAX_PEOPLE
from passerelle.radius import passwords, people_csv
from passerelle.radius.db import transaction
from passerelle.radius.models import AuditEntry, Person

from .conftest import ACME_HR, NOC, World, sign_in, token


def fixed() -> str:
    return "generated-pass"


def parse(text: str | bytes) -> people_csv.Parsed:
    data = text.encode() if isinstance(text, str) else text
    return people_csv.parse(data, new_password=fixed)


def reasons(parsed: people_csv.Parsed) -> list[tuple[int, str]]:
    return [(p.line, p.reason) for p in parsed.problems]


# -- the parse ----------------------------------------------------------------------

def test_a_good_file() -> None:
    parsed = parse("login,name,company,password,language\n"
                   "Alice@ACME.example, Alice Martin ,Acme,,nl\n"
                   "\n"
                   "bob@acme.example,,Acme,=starts-with-equals,\n")
    assert parsed.problems == []
    alice, bob = parsed.people
    assert (alice.line, alice.login, alice.name, alice.company, alice.language) == (
        2, "alice@acme.example", "Alice Martin", "Acme", "nl")
    assert (alice.password, alice.generated) == ("generated-pass", True)
    # A password is never a formula risk: it is not exported.
    assert (bob.line, bob.password, bob.generated, bob.language) == (
        4, "=starts-with-equals", False, "fr")


def test_bom_semicolons_and_columns_in_any_order() -> None:
    data = codecs.BOM_UTF8 + "Company;Login\r\nAcme;élodie@acme.example\r\n".encode()
    parsed = parse(data)
    assert parsed.problems == []
    assert [(p.login, p.company) for p in parsed.people] == [("élodie@acme.example", "Acme")]


def test_a_quoted_field_over_two_lines_keeps_the_line_numbers() -> None:
    parsed = parse('login,company,name\na@x.example,Acme,"two\nlines"\nb@x.example,,B\n')
    assert parsed.people == []
    # A name holds no line break (admin.clean_name): line 2, and the next is 4.
    assert [(line, why[:30]) for line, why in reasons(parsed)] == [
        (2, "the name contains control char"), (4, "the company must not be empty")]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("login,company,email\nx@y.example,Acme,z\n", 1, "unknown column 'email'"),
    ("login,name\nx@y.example,X\n", 1, "no 'company' column"),
    ("company\nAcme\n", 1, "no 'login' column"),
    ("login,company,login\nx@y.example,Acme,x@y.example\n", 1, "given twice"),
    ("login,company\nx@y.example\n", 2, "1 fields, the header names 2"),
    ("login,company\nx@y.example,Acme,extra\n", 2, "3 fields"),
    ("login,company\nnot-an-address,Acme\n", 2, "not-an-address"),
    ("login,company,language\nx@y.example,Acme,de\n", 2, "bad language 'de'"),
    ("login,company\nx@y.example,\n", 2, "the company must not be empty"),
    ("login,company,password\nx@y.example,Acme," + "p" * 129 + "\n", 2, "at most 128"),
    ("login,company,name\nx@y.example,Acme,tab\there\n", 2, "control characters"),
    ("login,company\nx@y.example,Acme\nX@Y.example,Acme\n", 3, "also on line 2"),
    ("login,company\n", 0, "names no one"),
    ("", 0, "the file is empty"),
    ("   \n\n", 0, "the file is empty"),
])
def test_each_kind_of_mistake(text: str, line: int, words: str) -> None:
    parsed = parse(text)
    assert parsed.people == [] or line > 2
    assert any(p.line == line and words in p.reason for p in parsed.problems), \
        reasons(parsed)


def test_every_bad_line_is_reported_not_only_the_first() -> None:
    parsed = parse("login,company,language\n"
                   "ok@acme.example,Acme,fr\n"
                   "bad,Acme,fr\n"
                   "ok2@acme.example,,xx\n"
                   "ok3@acme.example,Acme,en\n")
    assert [p.line for p in parsed.problems] == [3, 4, 4]
    assert [p.login for p in parsed.people] == ["ok@acme.example", "ok3@acme.example"]


@pytest.mark.parametrize("cell", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)",
                                  "=HYPERLINK(\"http://evil.example\")"])
@pytest.mark.parametrize("column", ["login", "name", "company", "language"])
def test_formula_injection_is_refused(cell: str, column: str) -> None:
    fields = {"login": "x@y.example", "name": "X", "company": "Acme", "language": "fr",
              column: cell}
    line = ",".join('"' + fields[c].replace('"', '""') + '"' for c in fields)
    parsed = parse("login,name,company,language\n" + line + "\n")
    assert parsed.people == []
    assert len(parsed.problems) == 1, reasons(parsed)
    assert parsed.problems[0].line == 2 and "formula" in parsed.problems[0].reason
    assert f"the {column}" in parsed.problems[0].reason


def test_a_cell_that_starts_with_a_tab_is_a_formula_too() -> None:
    parsed = parse('login,company,name\nx@y.example,Acme,"\t=1+1"\n')
    # The tab is stripped as space first, then the = is caught.
    assert "formula" in parsed.problems[0].reason


def test_wrong_encoding_names_the_line() -> None:
    data = "login,company,name\nx@y.example,Acme,Ok\ny@y.example,Acme,Hélène\n".encode(
        "latin-1")
    parsed = parse(data)
    assert parsed.people == []
    assert reasons(parsed) == [(3, "the file is not UTF-8 text (byte 0xe9): save it as "
                                   "\"CSV UTF-8\"")]


def test_utf16_from_a_spreadsheet_is_refused_clearly() -> None:
    parsed = parse("login,company\nx@y.example,Acme\n".encode("utf-16"))
    assert parsed.people == [] and "not UTF-8" in parsed.problems[0].reason


def test_a_binary_file_is_refused() -> None:
    parsed = parse(b"login,company\nx@y.example,Acme\x00\n")
    assert reasons(parsed) == [(2, "the file holds a NUL character: it is not a CSV text file")]


def test_broken_quoting() -> None:
    parsed = parse('login,company\n"x@y.example,Acme\n')
    assert parsed.people == [] and "unreadable CSV" in parsed.problems[0].reason


def test_a_huge_file_is_refused_before_it_is_read() -> None:
    data = b"login,company\n" + b"x" * people_csv.MAX_BYTES
    parsed = parse(data)
    assert parsed.people == []
    assert reasons(parsed) == [(0, f"the file has {len(data)} bytes; an import takes at most "
                                   f"{people_csv.MAX_BYTES} ({people_csv.MAX_PEOPLE} people): "
                                   "split it")]


def test_too_many_people() -> None:
    lines = "".join(f"p{n}@acme.example,Acme\n" for n in range(people_csv.MAX_PEOPLE + 1))
    parsed = parse("login,company\n" + lines)
    assert parsed.people == [] and "more than" in parsed.problems[0].reason


# -- through the console --------------------------------------------------------------

def upload(client: FlaskClient, data: bytes, name: str = "people.csv") -> tuple[int, str]:
    answer = client.post("/people/import", data={
        "csrf_token": token(client, "/people/import"), "file": (io.BytesIO(data), name)})
    return answer.status_code, answer.get_data(as_text=True)


def people_count(factory: sessionmaker[DB]) -> int:
    with transaction(factory) as db:
        return int(db.scalar(select(func.count()).select_from(Person)) or 0)


def test_import_on_the_web(client: FlaskClient, factory: sessionmaker[DB],
                           world: World) -> None:
    sign_in(client, NOC)
    page = client.get("/people/import").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and "csrf_token" in page
    status, body = upload(client, b"login,name,company,password,language\n"
                                  b"dave@acme.example,Dave,Acme,dave's password,en\n"
                                  b"erin@globex.example,Erin,Globex,,nl\n")
    assert status == 200, body
    assert "2 people imported." in body
    # Erin's generated password is on this page, once; Dave's typed one is not.
    shown = body.split('<code class="secret">')[1].split("</code>")[0]
    assert len(shown) == 16 and "dave&#39;s password" not in body
    with transaction(factory) as db:
        erin = db.scalar(select(Person).where(Person.login == "erin@globex.example"))
        assert erin is not None and (erin.name, erin.language) == ("Erin", "nl")
        assert passwords.verify_password(erin.password_hash, shown)
        lines = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "import")))
        dave = db.scalar(select(Person).where(Person.login == "dave@acme.example"))
        assert dave is not None and passwords.verify_password(dave.password_hash,
                                                              "dave's password")
        assert {e.subject_id for e in lines} == {erin.id, dave.id}
        assert all(e.actor == NOC and "people.csv" in e.detail for e in lines)
    assert shown not in client.get(f"/people/{erin.id}").get_data(as_text=True)


def test_one_bad_line_and_nothing_is_imported(client: FlaskClient, factory: sessionmaker[DB],
                                              world: World) -> None:
    sign_in(client, NOC)
    before = people_count(factory)
    # Lines 2 and 4 are good; 3 names a login that exists (found only in the
    # database), 5 a company that does not.
    status, body = upload(client, b"login,company\n"
                                  b"new1@acme.example,Acme\n"
                                  b"ALICE@acme.example,Acme\n"
                                  b"new2@acme.example,Acme\n"
                                  b"new3@acme.example,Initech\n")
    assert status == 400
    assert "Nothing was imported" in body
    assert "already exists" in body and "unknown company &#39;Initech&#39;" in body
    table = body.split("<tbody>")[1]
    assert '<td data-label="Line">3</td>' in table and '<td data-label="Line">5</td>' in table
    assert '<td data-label="Line">2</td>' not in table
    assert people_count(factory) == before


def test_parse_problems_are_listed_on_the_page(client: FlaskClient, factory: sessionmaker[DB],
                                              world: World) -> None:
    sign_in(client, NOC)
    before = people_count(factory)
    status, body = upload(client, b"login,company,name\nx@acme.example,Acme,=cmd|calc\n"
                                  b"bad login,Acme,B\n")
    assert status == 400
    assert "formula" in body and "bad login" in body
    assert people_count(factory) == before


def test_a_company_manager_imports_only_into_their_company(
        client: FlaskClient, factory: sessionmaker[DB], world: World) -> None:
    sign_in(client, ACME_HR)
    before = people_count(factory)
    status, body = upload(client, b"login,company\nok@acme.example,Acme\n"
                                  b"spy@globex.example,Globex\n")
    assert status == 400
    assert "the company &#39;Globex&#39; is not yours (Acme)" in body
    assert people_count(factory) == before
    status, body = upload(client, b"login,company\nok@acme.example,Acme\n")
    assert status == 200 and "1 person imported." in body


def test_a_file_beyond_the_upload_limit(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    csrf = token(client, "/people/import")
    # The body written here: the test client would spool a big one to a file.
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() + \
        b"x" * (people_csv.MAX_BYTES + 100 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    answer = client.post("/people/import", data=body,
                         content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 413
    # Other pages keep the console's small limit.
    answer = client.post("/people/new", data={"csrf_token": csrf, "name": "x" * 20_000})
    assert answer.status_code == 413


def test_the_web_takes_fewer_people_than_the_command_line(client: FlaskClient,
                                                        world: World) -> None:
    sign_in(client, NOC)
    many = "".join(f"p{n}@acme.example,Acme\n" for n in range(WEB_MAX_PEOPLE + 1))
    status, body = upload(client, ("login,company\n" + many).encode())
    assert status == 400
    assert f"more than {WEB_MAX_PEOPLE} people: split the file" in body
    assert people_csv.parse(("login,company\n" + many).encode(), new_password=fixed).problems \
        == []


def test_no_file(client: FlaskClient, world: World) -> None:
    sign_in(client, NOC)
    answer = client.post("/people/import", data={"csrf_token": token(client, "/people/import")})
    assert answer.status_code == 400 and "Choose a CSV file." in answer.get_data(as_text=True)


# -- through the command line -----------------------------------------------------------

def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["passerelle", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_line_import(tmp_path: Path, db_url: str, factory: sessionmaker[DB],
                                 world: World, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"login,company\nnew@acme.example,Acme\nalice@acme.example,Acme\n"
                    b"x@y.example,Acme,extra\n")
    before = people_count(factory)
    code, out, err = run(monkeypatch, capsys, "admin", "person", "import", str(bad),
                         "--db", db_url)
    assert code == 2, (out, err)
    assert err.splitlines() == [f"{bad}: line 4: 3 fields, the header names 2",
                                "Error: nothing imported: 1 bad line(s)"]
    assert people_count(factory) == before
    # The parse was clean but the database refuses line 3: still nothing.
    bad.write_bytes(b"login,company\nnew@acme.example,Acme\nalice@acme.example,Acme\n")
    code, out, err = run(monkeypatch, capsys, "admin", "person", "import", str(bad),
                         "--db", db_url)
    assert code == 2 and "line 3: login 'alice@acme.example' already exists" in err
    assert people_count(factory) == before
    good = tmp_path / "good.csv"
    good.write_bytes(b"login,company,password\nnew@acme.example,Acme,\n"
                     b"new2@acme.example,Acme,pw2\n")
    code, out, err = run(monkeypatch, capsys, "admin", "person", "import", str(good),
                         "--db", db_url)
    assert code == 0, err
    assert out.startswith("2 people imported\nGenerated passwords (shown this once):\n")
    assert "new@acme.example" in out and "new2@acme.example" not in out
    assert people_count(factory) == before + 2
    code, out, err = run(monkeypatch, capsys, "admin", "person", "import",
                         str(tmp_path / "missing.csv"), "--db", db_url)
    assert code == 2 and "cannot read" in err
