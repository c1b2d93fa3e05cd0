"""Languages: Accept-Language, the switcher, and catalogues that cover every string."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale

import passerelle.portal
from passerelle.portal.reasons import REASONS
from passerelle.portal.settings import LANGUAGES
from passerelle.refusal import Refusal

from .conftest import FakeDaemon, check_in, get

PORTAL_DIR = Path(passerelle.portal.__file__).parent
TRANSLATIONS = PORTAL_DIR / "translations"

TITLES = {"fr": "Se connecter", "nl": "Inchecken", "en": "Check in", "de": "Anmelden"}
NO_CREDIT = {"fr": "Vous n'avez plus de crédit de télétravail.",
             "nl": "U hebt geen telewerktegoed meer.",
             "en": "You have no telework credit left.",
             "de": "Sie haben kein Telearbeitsguthaben mehr."}


def _messages() -> set[str]:
    found = extract_from_dir(str(PORTAL_DIR), method_map=[("**.py", "python"),
                                                          ("templates/**.html", "jinja2")],
                             keywords={"_": None, "gettext": None, "_l": None,
                                       "lazy_gettext": None})
    return {message if isinstance(message, str) else message[0]
            for _file, _line, message, _comments, _ctx in found}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_string_is_translated(lang: str) -> None:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    wanted = _messages()
    assert len(wanted) > 70
    translated = {m.id for m in catalog if m.id and m.string}
    missing = sorted(wanted - translated)
    assert not missing
    for message in catalog:
        if isinstance(message.id, str) and "%(" in message.id:
            assert isinstance(message.string, str)
            names = sorted(p.split(")")[0] for p in message.id.split("%(")[1:])
            assert sorted(p.split(")")[0] for p in message.string.split("%(")[1:]) == names


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_compiled_catalogue_matches_its_po_file(lang: str) -> None:
    folder = TRANSLATIONS / lang / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    with (folder / "messages.mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert po == mo, "run the compile step in docs/portal.md"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_accept_language_picks_the_language(client: FlaskClient, lang: str) -> None:
    r = get(client, "/", headers={"Accept-Language": f"{lang}-BE;q=0.9, ja;q=0.5"})
    body = html.unescape(r.get_data(as_text=True))
    assert f'<html lang="{lang}">' in body
    assert f"<h1>{TITLES[lang]}</h1>" in body


def test_an_unknown_language_falls_back_to_english(client: FlaskClient) -> None:
    body = get(client, "/", headers={"Accept-Language": "ja, zh"}).get_data(as_text=True)
    assert '<html lang="en">' in body


def test_the_switcher_sets_a_cookie_and_comes_back(client: FlaskClient) -> None:
    body = get(client, "/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert 'href="/lang/nl?next=/"' in body and 'aria-current="true"' in body
    r = get(client, "/lang/nl?next=/", headers={"Accept-Language": "fr"})
    assert r.status_code == 303 and r.headers["Location"] == "/"
    body = get(client, "/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="nl">' in body and "<h1>Inchecken</h1>" in body


def test_an_unknown_switch_changes_nothing(client: FlaskClient) -> None:
    r = get(client, "/lang/xx?next=/")
    assert r.status_code == 303 and not r.headers.get_all("Set-Cookie")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_refusals_and_status_in_every_language(client: FlaskClient, daemon: FakeDaemon,
                                               lang: str) -> None:
    daemon.accounts["broke@x.example"] = "no-credit"
    get(client, f"/lang/{lang}?next=/")
    body = html.unescape(check_in(client, login="broke@x.example").get_data(as_text=True))
    assert NO_CREDIT[lang] in body
    check_in(client)
    status = get(client, "/status").get_data(as_text=True)
    assert {"fr": "2 h 01 min", "nl": "2 u 01 min", "en": "2 h 01 min",
            "de": "2 Std. 01 Min."}[lang] in status
    assert {"fr": "98,8 Mo", "nl": "98,8 MB", "en": "98.8 MB",
            "de": "98,8 MB"}[lang] in status


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_refusal_has_words_in_every_catalogue(app: Flask, lang: str) -> None:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        translated = {m.id: m.string for m in read_po(f) if m.id and m.string}
    assert set(REASONS) == set(Refusal), "one entry per refusal, no more"
    for refusal in Refusal:
        words = REASONS[refusal]
        for text in (words.title, words.advice):
            with app.test_request_context(), force_locale("en"):
                english = str(text)
            assert translated.get(english), (lang, refusal, english)
