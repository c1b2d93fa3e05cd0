"""People from a CSV file: every line read and checked before anything is stored.

``parse`` is pure: bytes in, the people to add and every problem found out
(with its line number). It checks each field with admin.py's own rules, so
a line the file refuses is one ``person add`` would refuse, in the same
words. ``add_people`` then adds them through ``admin.add_person`` in the
caller's transaction and raises ``ImportRefused`` when any line fails
there (a login taken, a company unknown): the caller's transaction rolls
back and nothing is half-imported.

The file: UTF-8 (a byte-order mark, as spreadsheets write one, is fine),
comma- or semicolon-separated, a header line naming the columns
(``login`` and ``company`` required; ``name``, ``password``, ``language``
optional, in any order). An empty password gets a generated one, shown
once to whoever imports.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError

from . import admin

COLUMNS = ("login", "name", "company", "password", "language")
REQUIRED = ("login", "company")
MAX_BYTES = 1_000_000
# Each password is hashed with argon2 (about 75 ms on a small server): a
# few minutes at most from the command line.
MAX_PEOPLE = 2_000
MAX_FIELD = 1_000  # characters: any longer field is not a name or a login
# What a spreadsheet runs as a formula when the file is opened again
# (CSV injection): refused rather than stored and exported later.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class NewPerson:
    line: int  # where it starts in the file (the header is line 1)
    login: str
    company: str
    password: str = field(repr=False)
    generated: bool  # the password was made here: show it once
    name: str = ""
    language: str = "fr"


@dataclass(frozen=True)
class Problem:
    line: int  # 0: the file as a whole
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


@dataclass(frozen=True)
class Parsed:
    people: list[NewPerson]
    problems: list[Problem]


class ImportRefused(UserError):
    """Some lines cannot be added: nothing is."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"nothing imported: {len({p.line for p in problems})} bad line(s)")


def _text(data: bytes) -> str | Problem:
    if len(data) > MAX_BYTES:
        return Problem(0, f"the file has {len(data)} bytes; an import takes at most "
                          f"{MAX_BYTES} ({MAX_PEOPLE} people): split it")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return Problem(line, f"the file is not UTF-8 text (byte {data[exc.start]:#04x}): "
                             "save it as \"CSV UTF-8\"")
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        return Problem(line, "the file holds a NUL character: it is not a CSV text file")
    if not text.strip():
        return Problem(0, "the file is empty: give a header line and one line per person")
    return text


def _dialect(first_line: str) -> str:
    # Spreadsheets in French and Dutch locales write semicolons.
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _header(cells: list[str]) -> list[str] | list[Problem]:
    names = [c.strip().lower() for c in cells]
    problems = [Problem(1, f"unknown column {n[:40]!r}: the columns are "
                           f"{', '.join(COLUMNS)}") for n in names if n not in COLUMNS]
    problems += [Problem(1, f"the column {n!r} is given twice")
                 for n in dict.fromkeys(n for n in names if names.count(n) > 1)]
    problems += [Problem(1, f"no {n!r} column: the header must name it (e.g. "
                            "login,name,company,password,language)")
                 for n in REQUIRED if n not in names]
    return problems or names


def _field_problems(line: int, fields: dict[str, str]) -> list[Problem]:
    problems = []
    for column, value in fields.items():
        if len(value) > MAX_FIELD:
            problems.append(Problem(line, f"the {column} has {len(value)} characters"))
        elif column != "password" and value.startswith(FORMULA_STARTS):
            problems.append(Problem(line, f"the {column} {value[:20]!r} starts with "
                                          f"{value[0]!r}: a spreadsheet would run it as a "
                                          "formula, so it is refused"))
    return problems


def _person(line: int, fields: dict[str, str],
            new_password: Callable[[], str]) -> NewPerson | list[Problem]:
    problems = _field_problems(line, fields)
    if problems:
        return problems
    checked: dict[str, str] = {}
    # admin.py's rules, each on its own field, so that every mistake of the
    # line is reported at once.
    rules: dict[str, Callable[[str], str]] = {
        "login": admin.clean_login,
        "company": lambda v: admin.clean_name(v, "the company", 128),
        "name": lambda v: admin.clean_name(v, "the name", 128) if v else "",
        "password": lambda v: admin.clean_password(v) if v else "",
        "language": lambda v: admin.clean_language(v.lower()) if v else "fr",
    }
    for column, rule in rules.items():
        try:
            checked[column] = rule(fields.get(column, ""))
        except UserError as exc:
            problems.append(Problem(line, str(exc)))
    if problems:
        return problems
    password = checked["password"]
    return NewPerson(line=line, login=checked["login"], company=checked["company"],
                     password=password or new_password(), generated=not password,
                     name=checked["name"], language=checked["language"])


def parse(data: bytes, new_password: Callable[[], str] = admin.new_password,
          max_people: int = MAX_PEOPLE) -> Parsed:
    """The people of a CSV file and every problem of it; nothing is stored."""
    text = _text(data)
    if isinstance(text, Problem):
        return Parsed([], [text])
    reader = csv.reader(io.StringIO(text, newline=""),
                        delimiter=_dialect(text.split("\n", 1)[0]), strict=True)
    people: list[NewPerson] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    columns: list[str] | None = None
    line, count = 1, 0
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if columns is None:
                header = _header(cells)
                if header and isinstance(header[0], Problem):
                    return Parsed([], [p for p in header if isinstance(p, Problem)])
                columns = [c for c in header if isinstance(c, str)]
                continue
            if len(cells) != len(columns):
                problems.append(Problem(start, f"{len(cells)} fields, the header names "
                                               f"{len(columns)}"))
                continue
            count += 1
            if count > max_people:
                return Parsed([], [Problem(0, f"more than {max_people} people: split the "
                                              "file")])
            found = _person(start, {c: v.strip() for c, v in zip(columns, cells, strict=True)},
                            new_password)
            if isinstance(found, list):
                problems += found
                continue
            key = found.login.lower()
            if key in first_line:
                problems.append(Problem(start, f"login {found.login!r} is also on line "
                                               f"{first_line[key]}"))
                continue
            first_line[key] = start
            people.append(found)
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
    if columns is None and not problems:
        problems.append(Problem(0, "the file has no header line"))
    if columns is not None and not people and not problems:
        problems.append(Problem(0, "the file names no one: one line per person after the "
                                   "header"))
    return Parsed(people, problems)


def add_people(db: DB, people: Iterable[NewPerson]) -> list[NewPerson]:
    """Add every person, in the caller's transaction; ``ImportRefused``
    (after trying every line) if any cannot be added."""
    added: list[NewPerson] = []
    problems: list[Problem] = []
    for person in people:
        try:
            # add_person checks everything before it adds: a refusal leaves
            # the transaction as it was, so the next lines are still tried.
            admin.add_person(db, person.login, person.company, person.password,
                             name=person.name, language=person.language)
        except UserError as exc:
            problems.append(Problem(person.line, str(exc)))
        else:
            added.append(person)
    if problems:
        raise ImportRefused(problems)
    return added
