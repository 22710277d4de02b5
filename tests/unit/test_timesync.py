"""chrony's tracking CSV, the source lines written for it, the quality rule, time events and the priority rule."""
from __future__ import annotations

import pytest

from firmware.config import meter_schema
from firmware.timesync.chrony import ChronyError, Tracking, source_lines
from firmware.timesync.quality import DEGRADED, SYNCHRONISED, UNSYNCHRONISED, Limits, Watch, assess, may_set

LINE = "7F000001,127.0.0.1,2,1796173790.160885452,-0.000000991,0.000000058,0.000000979,0.022,0.006,0.341," \
       "0.000004478,0.000000742,0.3,Normal"
NOW = 1796173791.0


def tracking(**changes) -> Tracking:
    t = Tracking.parse(LINE)
    return Tracking(**{**t.__dict__, **changes})


def test_tracking_parse():
    t = Tracking.parse("some banner\n" + LINE + "\n")
    assert (t.ref_name, t.stratum, t.leap, t.leap_code) == ("127.0.0.1", 2, "Normal", 0)
    assert t.system_offset == pytest.approx(-9.91e-7) and t.last_offset == pytest.approx(5.8e-8)
    assert t.root_distance == pytest.approx(0.000004478 / 2 + 0.000000742)
    for bad in ("", "1,2,3", LINE.replace(",2,", ",two,", 1)):
        with pytest.raises(ChronyError):
            Tracking.parse(bad)


def test_source_lines():
    text = source_lines(("ntp1.example.net", "10.0.0.1:1123", "[fd00::1]:123", "[fd00::2]"), True, 4, 8)
    lines = text.splitlines()[1:]
    assert lines == ["server ntp1.example.net iburst minpoll 4 maxpoll 8",
                     "server 10.0.0.1 port 1123 iburst minpoll 4 maxpoll 8",
                     "server fd00::1 port 123 iburst minpoll 4 maxpoll 8",
                     "server fd00::2 iburst minpoll 4 maxpoll 8"]
    assert source_lines(("a",), False, 6, 2).splitlines()[1] == "server a minpoll 6 maxpoll 6"
    with pytest.raises(ChronyError, match="out of range"):
        source_lines(("host:70000",), True, 6, 10)


def test_config_refuses_bad_servers():
    from hal.errors import ConfigError
    with pytest.raises(ConfigError, match="ntp_servers"):
        meter_schema().load({"time": {"ntp_servers": ["bad host"]}})


def test_assess():
    lim = Limits(max_offset=0.1, max_error=0.5, max_stratum=4, max_age=100)
    assert assess(tracking(), lim, NOW) == (SYNCHRONISED, [])
    assert assess(None, lim, NOW)[0] == UNSYNCHRONISED
    assert assess(tracking(leap="Not synchronised"), lim, NOW)[0] == UNSYNCHRONISED
    assert assess(tracking(stratum=0, ref_time=0.0), lim, NOW)[0] == UNSYNCHRONISED
    q, why = assess(tracking(last_offset=-0.2), lim, NOW)
    assert q == DEGRADED and "offset 0.200000 s" in why[0]
    assert assess(tracking(system_offset=0.11), lim, NOW)[0] == DEGRADED
    assert assess(tracking(stratum=5), lim, NOW)[0] == DEGRADED
    assert assess(tracking(root_delay=0.8, root_dispersion=0.2), lim, NOW)[0] == DEGRADED
    assert assess(tracking(), lim, NOW + 200)[0] == DEGRADED


def test_watch_events():
    w = Watch(Limits(step_threshold=1.0, log_threshold=0.01))
    q, ev = w.update(tracking(), NOW)
    assert q == SYNCHRONISED and [e.event for e in ev] == ["sync"]
    assert w.update(tracking(), NOW)[1] == []                          # same update: nothing new
    ev = w.update(tracking(ref_time=NOW + 1, last_offset=0.02), NOW + 1)[1]
    assert [e.event for e in ev] == ["slew"] and ev[0].offset == 0.02
    assert w.update(tracking(ref_time=NOW + 2, last_offset=0.005), NOW + 2)[1] == []   # under log_threshold
    ev = w.update(tracking(ref_time=NOW + 3, last_offset=-3.0), NOW + 3)[1]
    assert [e.event for e in ev] == ["step", "degraded"]
    assert w.update(tracking(ref_time=NOW + 4, last_offset=-5.0), NOW + 4)[1] == []    # same episode
    ev = w.update(tracking(ref_time=NOW + 5, last_offset=0.0001), NOW + 5)[1]
    assert [e.event for e in ev] == ["sync"]
    ev = w.update(tracking(ref_time=NOW + 6, ref_id="C0A80001", leap="Insert second"), NOW + 6)[1]
    assert [e.event for e in ev] == ["source", "leap"]
    ev = w.update(None, NOW + 7, wall_jump=2.0)[1]
    assert [e.event for e in ev] == ["clock_set", "unsync"]


def test_may_set():
    assert may_set(("ntp", "protocol"), "protocol", None) == (True, "accepted")
    assert not may_set(("ntp", "protocol"), "protocol", "ntp")[0]
    assert may_set(("protocol", "ntp"), "protocol", "ntp")[0]
    ok, why = may_set(("ntp",), "protocol", None)
    assert not ok and "not in" in why
