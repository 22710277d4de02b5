"""Sample loss as the supervisor sees it: frames lost and metrology overruns within the last 60 s, the last
gap, and the meter's state. Counters and times are exact integers and seconds, so the numbers are exact."""
from __future__ import annotations

import pytest

from firmware.health import (
    DEGRADED,
    EXIT_STATUS,
    HEALTHY,
    LOSS_WINDOW_S,
    NOT_HEALTHY,
    CounterWindow,
    SampleLoss,
    meter_state,
)

T0 = 1000.0            # monotonic seconds at the first heartbeat
UNIX0 = 1_750_000_000.0  # the same moment on the wall clock


def _beat(loss: SampleLoss, service: str, dt: float, **info) -> None:
    loss.heartbeat(service, info, T0 + dt, UNIX0 + dt)


def test_counter_window_sums_the_growth_of_the_last_60_s():
    w = CounterWindow()
    assert w.update(T0, 0) == 0
    assert w.update(T0 + 10, 100) == 100
    assert w.update(T0 + 30, 150) == 50
    assert w.total(T0 + 65) == 150
    assert w.total(T0 + 10 + LOSS_WINDOW_S) == 50   # growth exactly 60 s old is out of the window
    assert w.total(T0 + 30 + LOSS_WINDOW_S) == 0


def test_counter_window_counts_a_restarted_process_from_zero():
    w = CounterWindow()
    w.update(T0, 200)
    w.process_started()
    assert w.update(T0 + 1, 20) == 20      # the new process's own 20, not 20 - 200
    assert w.update(T0 + 2, 5) == 5        # a lower value than the last can only be a fresh start
    assert w.total(T0 + 2) == 225


def test_lost_frames_per_minute_and_last_gap_from_cumulative_counters_without_gap_fields():
    loss = SampleLoss(["acquisition", "metrology"])
    _beat(loss, "acquisition", 0.0, gaps=0, lost_frames=0)
    assert loss.summary(T0) == {"lost_frames_per_min": 0, "overruns_per_min": 0,
                                "last_gap": None, "losing_samples": False}
    _beat(loss, "acquisition", 0.5, gaps=1, lost_frames=128)
    _beat(loss, "acquisition", 1.0, gaps=1, lost_frames=128)
    _beat(loss, "acquisition", 20.5, gaps=3, lost_frames=384)
    s = loss.summary(T0 + 21)
    assert s["lost_frames_per_min"] == 384 and s["losing_samples"]
    # dated by the heartbeat that showed the growth; its size is the growth since the previous heartbeat
    assert s["last_gap"] == {"unix_s": UNIX0 + 20.5, "frames": 256}
    assert loss.summary(T0 + 0.5 + LOSS_WINDOW_S)["lost_frames_per_min"] == 256
    later = loss.summary(T0 + 20.5 + LOSS_WINDOW_S)
    assert (later["lost_frames_per_min"], later["losing_samples"]) == (0, False)
    assert later["last_gap"] == {"unix_s": UNIX0 + 20.5, "frames": 256}, "the last gap is kept after the minute"


def test_last_gap_is_the_acquisition_services_own_record_when_its_heartbeat_carries_one():
    loss = SampleLoss(["acquisition"])
    _beat(loss, "acquisition", 0.0, gaps=0, lost_frames=0, last_gap_frames=None, last_gap_unix_s=None)
    assert loss.summary(T0)["last_gap"] is None
    _beat(loss, "acquisition", 0.5, gaps=2, lost_frames=200, last_gap_frames=72, last_gap_unix_s=UNIX0 + 0.31)
    assert loss.summary(T0 + 0.5)["last_gap"] == {"unix_s": UNIX0 + 0.31, "frames": 72}
    assert loss.summary(T0 + 0.5)["lost_frames_per_min"] == 200
    # a restarted acquisition has no gap of its own yet: the last one stays, and its counters start at zero
    loss.process_started("acquisition")
    _beat(loss, "acquisition", 5.0, gaps=0, lost_frames=0)
    s = loss.summary(T0 + 5)
    assert s["last_gap"] == {"unix_s": UNIX0 + 0.31, "frames": 72} and s["lost_frames_per_min"] == 200
    _beat(loss, "acquisition", 5.5, gaps=1, lost_frames=16)
    s = loss.summary(T0 + 5.5)
    assert s["last_gap"] == {"unix_s": UNIX0 + 5.5, "frames": 16} and s["lost_frames_per_min"] == 216


def test_metrology_overruns_growing_within_the_minute_mean_losing_samples():
    loss = SampleLoss(["acquisition", "metrology"])
    _beat(loss, "acquisition", 0.0, gaps=0, lost_frames=0)
    _beat(loss, "metrology", 0.0, blocks=10, overruns=4)   # before this supervisor's first look: still growth
    _beat(loss, "metrology", 30.0, blocks=900, overruns=4)
    s = loss.summary(T0 + 30)
    assert (s["lost_frames_per_min"], s["overruns_per_min"], s["losing_samples"]) == (0, 4, True)
    assert s["last_gap"] is None
    s = loss.summary(T0 + LOSS_WINDOW_S)
    assert (s["overruns_per_min"], s["losing_samples"]) == (0, False)
    _beat(loss, "metrology", 61.0, overruns=7)
    assert loss.summary(T0 + 61)["overruns_per_min"] == 3


def test_heartbeats_without_the_counters_and_meters_without_the_services():
    loss = SampleLoss(["acquisition", "metrology"])
    _beat(loss, "acquisition", 0.0, blocks=3)      # no lost_frames in this heartbeat
    _beat(loss, "comms", 0.0, lost_frames=999)     # only acquisition's lost_frames are samples
    assert loss.summary(T0)["lost_frames_per_min"] == 0
    none = SampleLoss(["comms", "upgrade"])
    _beat(none, "acquisition", 0.0, lost_frames=50)
    assert none.summary(T0) == {"lost_frames_per_min": None, "overruns_per_min": None, "last_gap": None,
                                "losing_samples": False}


@pytest.mark.parametrize(("healthy", "losing", "state", "exit_status"), [
    (True, False, HEALTHY, 0), (True, True, DEGRADED, 2), (False, False, NOT_HEALTHY, 1), (False, True, NOT_HEALTHY, 1),
])
def test_meter_state_and_its_exit_status(healthy, losing, state, exit_status):
    assert meter_state(healthy, losing) == state
    assert EXIT_STATUS[state] == exit_status
