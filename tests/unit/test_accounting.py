"""fold() with a fixed clock: Start, Interim-Update and Stop in every order,
duplicated, late or overtaken; counters never go down, a stopped session is
final, and the time charged in all is the session time, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import permutations
from typing import Any

import pytest

from passerelle.radius.accounting import (
    TERMINATE_CAUSES,
    Change,
    Charge,
    Current,
    Record,
    Status,
    balances_after,
    charge,
    close,
    exhausted,
    fold,
)

GIGA = 2**32
T0 = datetime(2026, 6, 10, 8, 0)  # naive UTC, as the handler passes it


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rec(status: Status, seconds: int, session_time: int | None, inp: int = 0, out: int = 0,
        **kwargs: Any) -> Record:
    return Record(status=status, session_id="5F2A0001", event_time=at(seconds),
                  username="alice@acme.example", session_time=session_time,
                  input_octets=inp, output_octets=out, **kwargs)


START = rec(Status.START, 0, None, class_="psl1:abc",
            extra={"callingstationid": "aa-bb-cc-dd-ee-ff", "framedipaddress": "192.0.2.10"})
INTERIM1 = rec(Status.INTERIM_UPDATE, 300, 300, 1_000, 2_000, class_="psl1:abc")
INTERIM2 = rec(Status.INTERIM_UPDATE, 600, 600, GIGA - 10, 9_000, class_="psl1:abc")
# Input crossed 4 GiB between the second Interim and the Stop (Gigawords 1).
STOP = rec(Status.STOP, 900, 900, GIGA + 5, 3 * GIGA, terminate_cause="User-Request",
           class_="psl1:abc")


@dataclass
class Row:
    """A session row as a plain dict: what the real fold() decides is
    stored as is (the columns, the charged mark); no rule lives here."""

    columns: dict[str, Any] = field(default_factory=dict)
    charged: int = 0
    charges: list[int] = field(default_factory=list)
    exists: bool = False
    billable: bool = True

    def current(self) -> Current | None:
        if not self.exists:
            return None
        c = self.columns
        return Current(start=c.get("acctstarttime"), update=c.get("acctupdatetime"),
                       stop=c.get("acctstoptime"), session_time=c.get("acctsessiontime", 0),
                       input_octets=c.get("acctinputoctets", 0),
                       output_octets=c.get("acctoutputoctets", 0), charged=self.charged)

    def stored(self) -> Current:
        """The current state of a row the records made."""
        current = self.current()
        assert current is not None, "no record made the row"
        return current

    def store(self, change: Change) -> Change:
        if change.ignored:
            return change
        self.exists = True
        self.columns.update(change.columns)
        self.charged = change.charged
        if change.charge:
            self.charges.append(change.charge)
        return change

    def apply(self, record: Record) -> Change:
        return self.store(fold(self.current(), record, billable=self.billable))


def run(records: list[Record] | tuple[Record, ...]) -> Row:
    row = Row()
    seen = (0, 0, 0, 0)
    for record in records:
        row.apply(record)
        c = row.columns
        now = (c.get("acctsessiontime", 0), c.get("acctinputoctets", 0),
               c.get("acctoutputoctets", 0), row.charged)
        # Nothing ever goes down, whatever arrives.
        assert all(a >= b for a, b in zip(now, seen, strict=True)), (records, now, seen)
        seen = now
    return row


def final(row: Row) -> dict[str, Any]:
    keys = ("acctstarttime", "acctstoptime", "acctsessiontime", "acctinputoctets",
            "acctoutputoctets", "acctterminatecause", "username")
    return {k: row.columns.get(k) for k in keys} | {"charged": sum(row.charges)}


EXPECTED_STOPPED = {
    "acctstarttime": T0, "acctstoptime": at(900), "acctsessiontime": 900,
    "acctinputoctets": GIGA + 5, "acctoutputoctets": 3 * GIGA,
    "acctterminatecause": "User-Request", "username": "alice@acme.example", "charged": 900,
}


def test_in_order() -> None:
    row = run([START, INTERIM1, INTERIM2, STOP])
    assert final(row) == EXPECTED_STOPPED
    assert row.charges == [300, 300, 300]
    assert row.columns["acctupdatetime"] == at(900)
    assert row.columns["callingstationid"] == "aa-bb-cc-dd-ee-ff"
    assert row.columns["class_"] == "psl1:abc"


@pytest.mark.parametrize("order", list(permutations([START, INTERIM1, INTERIM2, STOP])),
                         ids=lambda o: "-".join(r.status.name[:2] + str(r.session_time or 0)
                                                for r in o))
def test_every_order_ends_the_same(order: tuple[Record, ...]) -> None:
    assert final(run(order)) == EXPECTED_STOPPED


def test_every_order_with_every_record_twice() -> None:
    # 2,520 distinct orders of eight records: retransmissions anywhere.
    records = [START, INTERIM1, INTERIM2, STOP]
    orders = set(permutations([0, 0, 1, 1, 2, 2, 3, 3]))
    assert len(orders) == 2520
    for order in orders:
        assert final(run([records[i] for i in order])) == EXPECTED_STOPPED, order


@pytest.mark.parametrize("order", list(permutations([START, INTERIM1, INTERIM2])))
def test_without_stop_the_session_stays_open_at_the_highest_counters(
        order: tuple[Record, ...]) -> None:
    row = run(order)
    assert row.columns.get("acctstoptime") is None
    assert row.columns["acctstarttime"] == T0
    assert row.columns["acctsessiontime"] == 600
    assert (row.columns["acctinputoctets"], row.columns["acctoutputoctets"]) == (GIGA - 10, 9_000)
    assert row.charged == 600


def test_an_overtaken_interim_changes_nothing() -> None:
    row = run([START, INTERIM2])
    before = dict(row.columns)
    change = row.apply(INTERIM1)
    assert not change.ignored and (change.charge, change.charged) == (0, 600)
    assert row.columns == before  # update time included: it never moves back


def test_a_stop_is_final() -> None:
    row = run([START, INTERIM1, STOP])
    stopped = dict(row.columns)
    later = rec(Status.INTERIM_UPDATE, 1200, 1200, 9 * GIGA, 9 * GIGA)
    for late in (INTERIM2, later, STOP, STOP._replace(session_time=5000), START):
        assert row.apply(late) == Change(ignored=True, charged=900)
    assert row.columns == stopped and row.charged == 900


def test_a_retransmitted_interim_charges_nothing_more() -> None:
    row = run([START, INTERIM1])
    change = row.apply(INTERIM1)
    assert (change.charge, change.charged) == (0, 300) and row.charges == [300]


def test_start_after_interim_moves_the_start_back_only() -> None:
    row = run([INTERIM1])
    assert row.columns["acctstarttime"] == T0  # worked back from Acct-Session-Time
    earlier_start = START._replace(event_time=at(-5))
    change = row.apply(earlier_start)
    assert (change.charge, change.charged) == (0, 300) and not change.closes
    assert row.columns["acctstarttime"] == at(-5)
    assert row.columns["acctsessiontime"] == 300 and row.columns["acctinputoctets"] == 1_000
    row.apply(START._replace(event_time=at(10)))  # a later Start does not move it forward
    assert row.columns["acctstarttime"] == at(-5)


def test_a_late_start_fills_what_the_interim_lacked() -> None:
    # An Interim without Class or User-Name (some NAS send them only in the
    # Start) must not leave the session unbound once the Start arrives.
    bare = INTERIM1._replace(username="", class_="")
    row = run([bare])
    assert "class_" not in row.columns and "username" not in row.columns
    row.apply(START)
    assert row.columns["class_"] == "psl1:abc"
    assert row.columns["username"] == "alice@acme.example"
    assert row.columns["callingstationid"] == "aa-bb-cc-dd-ee-ff"


def test_a_retransmitted_start_does_not_blank_columns() -> None:
    row = run([START, INTERIM1])
    row.apply(START._replace(extra={"callingstationid": "", "framedipaddress": ""}))
    assert row.columns["callingstationid"] == "aa-bb-cc-dd-ee-ff"
    assert row.columns["framedipaddress"] == "192.0.2.10"
    assert row.columns["acctsessiontime"] == 300


def test_stop_without_start_creates_the_closed_session() -> None:
    row = run([STOP])
    assert final(row) == EXPECTED_STOPPED
    assert row.charges == [900]


def test_interim_without_session_time_uses_the_clock_since_start() -> None:
    row = run([START, INTERIM1._replace(session_time=None)])
    assert row.columns["acctsessiontime"] == 300
    # An event before the start (a skewed clock) counts as zero, not negative.
    row2 = run([START, INTERIM1._replace(session_time=None, event_time=at(-60))])
    assert row2.columns["acctsessiontime"] == 0


def test_first_record_without_session_time_starts_the_session_there() -> None:
    row = run([INTERIM1._replace(session_time=None)])
    assert row.columns["acctstarttime"] == at(300)
    assert row.columns["acctsessiontime"] == 0 and row.charged == 0


def test_stop_time_is_never_before_the_start() -> None:
    row = run([START])
    row.apply(STOP._replace(event_time=at(-30), session_time=None))
    assert row.columns["acctstoptime"] == T0
    assert row.columns["acctsessiontime"] == 0


def test_acct_delay_time_corrected_times_place_the_session_right() -> None:
    # The handler passes event_time = receive time - Acct-Delay-Time. A Stop
    # received 120 s late, its Start lost, still dates the session right.
    received, delay = at(1020), 120
    late_stop = STOP._replace(event_time=received - timedelta(seconds=delay))
    row = run([late_stop])
    assert row.columns["acctstarttime"] == T0
    assert row.columns["acctstoptime"] == at(900)
    # The same Stop retransmitted with a larger delay (a new Identifier) is ignored.
    assert row.apply(late_stop._replace(event_time=received)).ignored


def test_gigawords_survive_and_a_wrap_without_them_never_lowers_counters() -> None:
    row = run([START, INTERIM2])
    # 40 octets after the 4 GiB wrap, from a NAS that forgot Gigawords.
    row.apply(rec(Status.INTERIM_UPDATE, 660, 660, 30, 9_500))
    assert row.columns["acctinputoctets"] == GIGA - 10
    assert row.columns["acctoutputoctets"] == 9_500
    row.apply(rec(Status.INTERIM_UPDATE, 720, 720, 7 * GIGA + 1, 10_000))
    assert row.columns["acctinputoctets"] == 7 * GIGA + 1  # no 32-bit truncation


@pytest.mark.parametrize("status", [Status.ACCOUNTING_ON, Status.ACCOUNTING_OFF])
def test_accounting_on_off_are_not_session_records(status: Status) -> None:
    # They close every session of the NAS (close()), not one.
    with pytest.raises(ValueError, match=status.name):
        fold(None, rec(status, 0, None), billable=True)


def test_status_codes_and_terminate_causes_match_the_rfcs() -> None:
    assert [int(s) for s in Status] == [1, 2, 3, 7, 8]
    expected = {1: "User-Request", 2: "Lost-Carrier", 4: "Idle-Timeout",
                5: "Session-Timeout", 6: "Admin-Reset", 7: "Admin-Reboot",
                10: "NAS-Request", 11: "NAS-Reboot"}
    assert {k: TERMINATE_CAUSES[k] for k in expected} == expected
    assert sorted(TERMINATE_CAUSES) == list(range(1, 19))  # RFC 2866 section 5.10


# -- the charge rule ------------------------------------------------------


@pytest.mark.parametrize(("charged", "used", "billable", "expected"), [
    (0, 300, True, Charge(300, 300)),      # the first record of a session
    (300, 600, True, Charge(300, 600)),    # only what is above the mark
    (600, 600, True, Charge(0, 600)),      # a retransmission
    (600, 300, True, Charge(0, 600)),      # an older record: the mark never goes down
    (0, 0, True, Charge(0, 0)),
    (0, 900, False, Charge(0, 0)),         # nobody's session: never charged
    (0, 2**32 - 1, True, Charge(2**32 - 1, 2**32 - 1)),  # the largest Acct-Session-Time
])
def test_charge(charged: int, used: int, billable: bool, expected: Charge) -> None:
    assert charge(charged, used, billable) == expected


def test_each_record_charges_what_it_adds() -> None:
    row = Row()
    assert [row.apply(r).charge for r in (START, INTERIM1, INTERIM2, STOP)] == [0, 300, 300, 300]
    assert row.charged == 900


def test_a_duplicate_stop_charges_nothing() -> None:
    row = run([START, INTERIM1, STOP])
    change = row.apply(STOP)
    assert change.ignored and change.charge == 0 and change.charged == 900
    assert row.charges == [300, 600]


def test_a_late_interim_after_the_stop_charges_nothing() -> None:
    row = run([START, STOP])
    late = row.apply(INTERIM2._replace(session_time=1200))  # more time than the Stop said
    assert late.ignored and late.charge == 0
    assert row.charged == 900 and row.columns["acctsessiontime"] == 900


def test_an_overtaking_interim_charges_first_and_the_overtaken_one_nothing() -> None:
    row = run([START])
    assert row.apply(INTERIM2).charge == 600
    assert row.apply(INTERIM1).charge == 0
    assert row.apply(STOP).charge == 300
    assert row.charges == [600, 300]


@pytest.mark.parametrize("first", [INTERIM1, STOP], ids=["interim", "stop"])
def test_a_lost_start_the_first_record_creates_and_charges_the_session(first: Record) -> None:
    change = Row().apply(first)
    assert not change.ignored
    assert change.charge == change.charged == first.session_time
    assert change.columns["acctstarttime"] == T0  # worked back from Acct-Session-Time
    assert change.closes is (first.status is Status.STOP)


def test_a_session_of_nobody_is_folded_but_never_charged() -> None:
    row = Row(billable=False)
    for record in (START, INTERIM1, STOP):
        change = row.apply(record)
        assert change.charge == 0 and change.charged == 0
    assert row.columns["acctsessiontime"] == 900 and row.charges == []


def test_a_delayed_record_is_charged_once_whatever_its_delay() -> None:
    # event_time arrives already corrected for Acct-Delay-Time: the delay
    # moves the dates, never what is charged.
    row = run([START])
    delayed = INTERIM1._replace(event_time=at(300) - timedelta(seconds=45))
    assert row.apply(delayed).charge == 300
    assert row.columns["acctupdatetime"] == at(255)
    assert row.apply(delayed._replace(event_time=at(300))).charge == 0


def test_huge_counters_are_kept_and_charge_the_time_only() -> None:
    biggest = 2**32 * (2**32 - 1) + (2**32 - 1)  # Gigawords and Octets at their maximum
    row = run([START])
    change = row.apply(rec(Status.INTERIM_UPDATE, 300, 2**32 - 1, biggest, biggest))
    assert change.columns["acctinputoctets"] == change.columns["acctoutputoctets"] == biggest
    assert change.charge == 2**32 - 1
    # A later record with small counters (a NAS that wrapped) lowers nothing.
    after = row.apply(rec(Status.INTERIM_UPDATE, 600, 600, 5, 5))
    assert after.columns["acctinputoctets"] == biggest and after.charge == 0


# -- Accounting-On/Off ------------------------------------------------------


def test_close_ends_an_open_session_charging_what_its_last_record_said() -> None:
    row = run([START, INTERIM1])
    row.charged = 120  # say the session's last charge was lost: the mark is behind
    change = row.store(close(row.stored(), at(1000), "NAS-Reboot", billable=True))
    assert change.closes and change.charge == 180 and change.charged == 300
    assert change.columns == {"acctstoptime": at(1000), "acctterminatecause": "NAS-Reboot"}
    assert row.columns["acctsessiontime"] == 300  # not the time the box was down


def test_close_of_a_charged_session_charges_nothing() -> None:
    row = run([START, INTERIM1])
    change = close(row.stored(), at(1000), "Admin-Reboot", billable=True)
    assert change.charge == 0 and change.charged == 300


def test_close_never_ends_a_session_before_its_start() -> None:
    row = run([START])
    change = close(row.stored(), at(-60), "NAS-Reboot", billable=True)
    assert change.columns["acctstoptime"] == T0
    no_start = Current(start=None, update=None, stop=None, session_time=0, input_octets=0,
                       output_octets=0, charged=0)
    assert close(no_start, at(5), "NAS-Reboot", billable=True).columns["acctstoptime"] == at(5)


def test_close_leaves_a_stopped_session_and_nobody_s_session_uncharged() -> None:
    stopped = run([START, STOP]).current()
    assert stopped is not None
    assert close(stopped, at(2000), "NAS-Reboot", billable=True).ignored
    open_ = run([START, INTERIM1]).current()
    assert open_ is not None
    unbilled = open_._replace(charged=0)
    assert close(unbilled, at(2000), "NAS-Reboot", billable=False).charge == 0


# -- the exhausted-credit signal ----------------------------------------------


def test_balances_after_a_batch_take_off_every_charge_of_the_batch() -> None:
    before = {1: 600, 2: 50}
    assert balances_after(before, [(1, 300), (2, 60), (1, 300), (3, 10)]) == {1: 0, 2: -10}
    assert before == {1: 600, 2: 50}


@pytest.mark.parametrize(("balance", "still_open", "cut"), [
    (0, True, True), (-10, True, True), (1, True, False),
    (0, False, False),  # the session ended anyway
    (None, True, False),  # nothing charged: no balance read, no signal
])
def test_exhausted(balance: int | None, still_open: bool, cut: bool) -> None:
    assert exhausted(balance, still_open) is cut


def test_the_record_that_uses_the_last_second_signals_exhaustion() -> None:
    credit = 600
    row = run([START])
    signals = []
    for record in (INTERIM1, INTERIM2, STOP):
        change = row.apply(record)
        (left,) = balances_after({1: credit}, [(1, change.charge)]).values()
        credit = left
        signals.append(exhausted(left, not change.closes))
    assert signals == [False, True, False]  # at 600 s; the Stop ends the session anyway
