"""The check-in benchmark's slow link (benchmarks/checkin/slowlink.py): its
queue keeps the frames' order and holds each its delay; in the lab, the
round trip the benchmark measures from the box to the centre is the
delay twice over, and next to nothing at 0 ms."""

from __future__ import annotations

from pathlib import Path

from benchmarks.checkin.slowlink import Delayed
from benchmarks.checkin_bench import Site
from passerelle.lab.netns import Lab
from tests.gateway.conftest import require_lab


def test_frames_leave_in_order_once_due() -> None:
    way = Delayed()
    way.add(10.015, b"a")
    way.add(10.020, b"b")
    assert way.next_due() == 10.015
    assert way.due(10.0149) == []
    assert way.due(10.015) == [b"a"]
    assert way.due(11.0) == [b"b"]
    assert way.next_due() is None


def test_a_shorter_delay_waits_behind_the_frames_in_flight() -> None:
    way = Delayed()
    way.add(10.030, b"sent at 30 ms")
    way.add(10.001, b"sent after the delay went to 0")
    assert way.due(10.010) == []
    assert way.due(10.030) == [b"sent at 30 ms", b"sent after the delay went to 0"]


def test_the_round_trip_to_the_centre_is_twice_the_delay(tmp_path: Path) -> None:
    require_lab()
    with Lab() as lab:
        site = Site(lab, tmp_path, centre_url="(no centre started)", clients=1)
        try:
            assert site.set_delay(0) < 20
            assert site.set_delay(20) >= 40
            assert site.set_delay(0) < 20
        finally:
            site.close()
