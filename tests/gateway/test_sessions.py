"""The box's session state machine, with a fixed clock and no sockets."""

from __future__ import annotations

import json

from passerelle.gateway import session_table as store
from passerelle.gateway import sessions as sm
from passerelle.gateway.sessions import Counters, Terms
from passerelle.radius.messages import AcctStatus, TerminateCause

T0 = 1_800_000_000.0
TERMS = Terms(session_timeout=3600, idle_timeout=600, interim_interval=300, class_=b"psl1:ab")


def opened(terms: Terms = TERMS) -> sm.Session:
    session, _ = sm.check_in("S1", "alice@acme.example", "02:00:00:00:00:01", "198.51.100.10",
                             terms, T0)
    return session


def accounts(actions: list[sm.Action]) -> list[sm.AccountingRecord]:
    return [a.record for a in actions if isinstance(a, sm.SendRecord)]


def test_check_in_allows_for_the_session_timeout_and_sends_start() -> None:
    _session, actions = sm.check_in("S1", "alice", "02:00:00:00:00:01", "198.51.100.10",
                                   TERMS, T0)
    allow = [a for a in actions if isinstance(a, sm.Allow)]
    assert len(allow) == 1 and allow[0].timeout == 3600
    (start,) = accounts(actions)
    assert start.status == AcctStatus.START and start.session_id == "S1"
    assert start.class_ == b"psl1:ab" and start.event_time == T0 and start.session_time == 0


def test_without_session_timeout_the_kernel_still_gets_a_safety_net() -> None:
    _, actions = sm.check_in("S1", "a", "02:00:00:00:00:01", "198.51.100.10", Terms(), T0)
    (allow,) = [a for a in actions if isinstance(a, sm.Allow)]
    assert allow.timeout == sm.NO_TIMEOUT


def test_interim_is_due_after_its_interval_with_cumulative_counters() -> None:
    s = opened()
    s = sm.observe(s, Counters(1000, 5000, 10, 20), T0 + 100)
    s, actions = sm.tick(s, T0 + 299)
    assert actions == []
    s, actions = sm.tick(s, T0 + 300)
    (interim,) = accounts(actions)
    assert interim.status == AcctStatus.INTERIM_UPDATE and interim.session_time == 300
    assert (interim.input_octets, interim.output_octets) == (1000, 5000)
    s, actions = sm.tick(s, T0 + 400)
    assert actions == []


def test_interim_interval_never_below_a_minute() -> None:
    s = opened(Terms(session_timeout=3600, interim_interval=10))
    s = sm.observe(s, Counters(1, 1, 1, 1), T0 + 30)
    assert sm.tick(s, T0 + 30)[1] == []
    assert accounts(sm.tick(s, T0 + 60)[1])[0].status == AcctStatus.INTERIM_UPDATE


def test_session_timeout_ends_at_the_granted_time_not_at_the_late_tick() -> None:
    s = opened()
    s = sm.observe(s, Counters(10, 10, 1, 1), T0 + 3500)
    s, actions = sm.tick(s, T0 + 3605)
    assert isinstance(actions[0], sm.Revoke)
    (stop,) = accounts(actions)
    assert stop.status == AcctStatus.STOP and stop.terminate_cause == TerminateCause.SESSION_TIMEOUT
    assert stop.session_time == 3600 and stop.event_time == T0 + 3600
    assert s.stopped == T0 + 3600


def test_idle_timeout_does_not_charge_the_idle_minutes() -> None:
    s = opened()
    s = sm.observe(s, Counters(100, 100, 1, 1), T0 + 120)
    s = sm.observe(s, Counters(100, 100, 1, 1), T0 + 500)  # no traffic since T0+120
    s, actions = sm.tick(s, T0 + 719)
    assert not accounts(actions) or accounts(actions)[0].status != AcctStatus.STOP
    s, actions = sm.tick(s, T0 + 720)
    (stop,) = accounts(actions)
    assert stop.terminate_cause == TerminateCause.IDLE_TIMEOUT and stop.session_time == 120


def test_default_idle_timeout_applies_when_the_centre_sets_none() -> None:
    s = opened(Terms(session_timeout=3600))
    s, actions = sm.tick(s, T0 + 899, default_idle=900)
    assert not any(isinstance(a, sm.Revoke) for a in actions)
    s, actions = sm.tick(s, T0 + 900, default_idle=900)
    assert accounts(actions)[0].terminate_cause == TerminateCause.IDLE_TIMEOUT


def test_end_is_final_and_sends_one_stop() -> None:
    s = opened()
    s, actions = sm.end(s, TerminateCause.USER_REQUEST, T0 + 60)
    assert accounts(actions)[0].terminate_cause == TerminateCause.USER_REQUEST
    assert sm.end(s, TerminateCause.ADMIN_RESET, T0 + 61) == (s, [])
    assert sm.tick(s, T0 + 10_000) == (s, [])
    assert sm.change(s, T0 + 70, session_timeout=5) == (s, [])


def test_counters_survive_a_recreated_kernel_entry() -> None:
    s = opened()
    s = sm.observe(s, Counters(1000, 2000, 10, 20), T0 + 10)
    s = sm.observe(s, Counters(50, 60, 1, 2), T0 + 20)  # entry re-created: counters restarted
    assert s.counters == Counters(1050, 2060, 11, 22)
    s = sm.observe(s, Counters(70, 80, 2, 3), T0 + 30)
    assert s.counters == Counters(1070, 2080, 12, 23)


def test_gigaword_sized_counters_are_kept_whole() -> None:
    s = opened()
    big = 5 * 2**32 + 7
    s = sm.observe(s, Counters(big, big + 1, 1, 1), T0 + 10)
    _, actions = sm.end(s, TerminateCause.USER_REQUEST, T0 + 20)
    stop = accounts(actions)[0]
    assert stop.input_octets == big and stop.output_octets == big + 1


def test_coa_session_timeout_counts_from_its_event_timestamp() -> None:
    """Finding 11: a CoA that arrives late, or is replayed within the
    Event-Timestamp window, must not lengthen the session: its
    Session-Timeout runs from the request's Event-Timestamp."""
    s = opened()
    changed, actions = sm.change(s, T0 + 1000, session_timeout=600, event_timestamp=T0 + 900)
    (extend,) = actions
    assert changed.ends == T0 + 1500
    assert isinstance(extend, sm.Extend) and extend.timeout == 500
    # Replayed 200 s later: the same end, not 200 s more.
    again, actions = sm.change(changed, T0 + 1200, session_timeout=600,
                               event_timestamp=T0 + 900)
    assert again.ends == T0 + 1500 and actions[0] == sm.Extend(again, 300)
    # A stamp in the future (clocks differ) counts from now, never later.
    ahead, _ = sm.change(s, T0 + 1000, session_timeout=600, event_timestamp=T0 + 1200)
    assert ahead.ends == T0 + 1600
    # Its time already over: the session ends at the next tick.
    late, actions = sm.change(s, T0 + 1000, session_timeout=60, event_timestamp=T0 + 900)
    assert late.ends == T0 + 960 and actions[0] == sm.Extend(late, 1)
    _, actions = sm.tick(late, T0 + 1000)
    assert accounts(actions)[0].terminate_cause == TerminateCause.SESSION_TIMEOUT


def test_coa_session_timeout_without_a_stamp_counts_from_now_and_keeps_counters() -> None:
    s = opened()
    s = sm.observe(s, Counters(5, 5, 1, 1), T0 + 100)
    s, actions = sm.change(s, T0 + 1000, session_timeout=60)
    (extend,) = actions
    assert isinstance(extend, sm.Extend) and extend.timeout == 60
    assert s.ends == T0 + 1060 and s.counters == Counters(5, 5, 1, 1)
    s, actions = sm.tick(s, T0 + 1060)
    assert accounts(actions)[0].terminate_cause == TerminateCause.SESSION_TIMEOUT


def test_restore_with_the_kernel_entry_keeps_the_session() -> None:
    s = opened()
    restored, actions = sm.restore(s, True, Counters(10, 20, 1, 2), T0 + 30, T0 + 25)
    assert actions == [] and restored.stopped is None
    assert restored.counters == Counters(10, 20, 1, 2)


def test_restore_after_expiry_ends_at_the_right_time_and_cause() -> None:
    s = opened()
    s = sm.observe(s, Counters(10, 20, 1, 2), T0 + 3000)
    _restored, actions = sm.restore(s, False, None, T0 + 5000, T0 + 3100)
    (stop,) = accounts(actions)
    assert stop.terminate_cause == TerminateCause.SESSION_TIMEOUT
    assert stop.event_time == T0 + 3600 and stop.session_time == 3600
    assert stop.input_octets == 10


def test_restore_after_a_reboot_ends_with_nas_reboot_at_the_last_heartbeat() -> None:
    s = opened()
    _restored, actions = sm.restore(s, False, None, T0 + 1000, T0 + 400)
    (stop,) = accounts(actions)
    assert stop.terminate_cause == TerminateCause.NAS_REBOOT
    assert stop.event_time == T0 + 400 and stop.session_time == 400


def test_restore_of_a_session_idle_while_down_ends_idle() -> None:
    s = opened()
    s = sm.observe(s, Counters(10, 20, 1, 2), T0 + 100)
    _restored, actions = sm.restore(s, True, Counters(10, 20, 1, 2), T0 + 800, T0 + 300)
    (stop,) = accounts(actions)
    assert stop.terminate_cause == TerminateCause.IDLE_TIMEOUT and stop.session_time == 100


def test_coa_bandwidth_changes_the_caps_only() -> None:
    s = opened()
    s, actions = sm.change(s, T0 + 10, bandwidth_down=1_000_000)
    (rates,) = actions
    assert isinstance(rates, sm.Rates) and s.terms.bandwidth_down == 1_000_000
    assert s.terms.session_timeout == 3600


def test_new_ipv6_addresses_replace_the_entries_and_keep_the_totals() -> None:
    s = opened()
    s = sm.observe(s, Counters(100, 200, 1, 2), T0 + 10)
    s, actions = sm.readdress(s, ("2001:db8:1::10",), T0 + 100)
    (allow,) = actions
    assert isinstance(allow, sm.Allow) and allow.timeout == 3500
    assert s.ipv6 == ("2001:db8:1::10",) and s.counters == Counters(100, 200, 1, 2)
    s = sm.observe(s, Counters(5, 5, 1, 1), T0 + 110)
    assert s.counters == Counters(105, 205, 2, 3)
    assert sm.readdress(s, ("2001:db8:1::10",), T0 + 120) == (s, [])


def test_the_session_table_gives_back_the_cause_in_every_form_it_stored() -> None:
    s, _ = sm.end(opened(), TerminateCause.ADMIN_RESET, T0 + 10)
    again = store.from_json(store.to_json(s))
    assert again == s and again.cause is TerminateCause.ADMIN_RESET
    # Earlier versions stored the RFC name, and "" for a session still open.
    for stored, cause in (("Admin-Reset", TerminateCause.ADMIN_RESET), ("", None)):
        data = json.loads(store.to_json(s))
        data["cause"] = stored
        assert store.from_json(json.dumps(data)).cause is cause
    assert opened().cause is None


def test_the_daemons_names_for_causes_are_the_shared_vocabulary() -> None:
    assert sm.Cause is TerminateCause
    assert sm.Cause.ADMIN_RESET is TerminateCause.ADMIN_RESET
    assert sm.Cause.LOST_CARRIER.label == "Lost-Carrier"


def test_credit_left_is_the_credit_at_check_in_less_this_session_s_time() -> None:
    s = opened(Terms(session_timeout=3600, credit_left=7200))
    assert s.credit_left(T0) == 7200
    assert s.credit_left(T0 + 125.9) == 7200 - 125
    assert s.credit_left(T0 + 9000) == 0, "never below 0"
    assert opened().credit_left(T0 + 10) is None, "the centre did not say"


def test_credit_left_is_kept_and_old_rows_read_back_without_it() -> None:
    s = opened(Terms(session_timeout=3600, credit_left=7200))
    assert store.from_json(store.to_json(s)).terms.credit_left == 7200
    data = json.loads(store.to_json(s))
    del data["terms"]["credit_left"]  # a row saved before the field existed
    old = store.from_json(json.dumps(data))
    assert old.terms.credit_left is None and old.credit_left(T0 + 60) is None


def test_a_session_timeout_of_years_reaches_the_kernel_cut_to_a_month() -> None:
    _, actions = sm.check_in("S1", "a", "02:00:00:00:00:01", "198.51.100.10",
                             Terms(session_timeout=10**8), T0)
    (allow,) = [a for a in actions if isinstance(a, sm.Allow)]
    assert allow.timeout == sm.KERNEL_MAX == 30 * 24 * 3600
    assert [sm.kernel_timeout(n) for n in (None, -5, 0, 60)] == [sm.NO_TIMEOUT, 1, 1, 60]
