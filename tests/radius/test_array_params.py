"""The accounting batch's array parameters, sent as PostgreSQL array
literals (store.text_array, store.integer_array), read back by PostgreSQL
as the values they were made of, whatever characters a Class holds."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from passerelle.radius import store

AWKWARD = ["psl1:plain", 'a"quote', "back\\slash", "comma,inside", "{braces}", "", "NULL",
           "sp ace", "é-ünicode", "trailing\\"]


# Array literals are PostgreSQL's (SQLite takes the values as a list): on
# PostgreSQL only.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_text_and_integer_arrays_round_trip(engine: Engine) -> None:
    with Session(engine) as db, db.begin():
        rows = store.fetch_pg(db, "SELECT CAST(:texts AS TEXT[]), CAST(:ints AS INTEGER[])",
                              {"texts": store.text_array(AWKWARD),
                               "ints": store.integer_array([3, 1, 2**31 - 1])})
    assert rows == [(AWKWARD, [3, 1, 2**31 - 1])]
