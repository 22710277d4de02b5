"""Demand methods against hand-computed cases and properties (SPEC §3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.demand import (
    DEMAND_INTERVALS_MIN,
    DemandClock,
    PeakDemand,
    ThermalDemand,
    WindowDemand,
    check_interval,
    coincident_pf,
)

# Float sums of at most a few thousand terms: 1e-9 relative is far above rounding and far below any
# error a wrong method would make.
REL = 1e-9


def feed(dm: WindowDemand, clock: DemandClock, t0: int, watts: list[float]) -> list[np.ndarray]:
    """One value per second starting at t0; the demands at each closure."""
    out = []
    for k, w in enumerate(watts):
        t = t0 + k
        c = clock.step(t)
        if c.close:
            out.append(dm.close(c.skipped))
        dm.accumulate(np.array([w]), 1.0)
    return out


def test_allowed_intervals_and_subintervals():
    assert check_interval(900, 300) == 3
    assert check_interval(900, 900) == 1
    assert check_interval(3600, 300) == 12
    with pytest.raises(ValueError, match="not allowed"):
        check_interval(7 * 60, 60)
    with pytest.raises(ValueError, match="does not divide"):
        check_interval(900, 400)
    with pytest.raises(ValueError, match="at most 12"):
        check_interval(3600, 240)


def test_block_demand_of_a_steady_load_after_a_partial_first_interval():
    dm, clock = WindowDemand(1, 900, 900), DemandClock(900)
    # start 100 s into an interval: the first (partial) interval sees 800 s of 1000 W
    demands = feed(dm, clock, 100, [1000.0] * (800 + 900 + 1))
    assert demands[0][0] == pytest.approx(1000.0 * 800 / 900, rel=REL)
    assert demands[1][0] == pytest.approx(1000.0, rel=REL)


def test_rolling_demand_of_a_step_by_hand():
    # 15-min interval of three 5-min subintervals; 0 W for one interval, then 1200 W
    dm, clock = WindowDemand(1, 900, 300), DemandClock(300)
    demands = feed(dm, clock, 0, [0.0] * 900 + [1200.0] * 900 + [0.0])
    after_step = [float(d[0]) for d in demands[3:6]]
    assert after_step == pytest.approx([400.0, 800.0, 1200.0], rel=REL)


def test_predicted_demand_mid_subinterval():
    dm, clock = WindowDemand(1, 900, 300), DemandClock(300)
    feed(dm, clock, 0, [600.0] * 600 + [1500.0] * 150)
    # window: two closed subs of 600 W (180 kJ each); open: 150 s of 1500 W, kept for the last 150 s:
    # at the closure the window will be (180e3 + 180e3 + 450e3) / 900 s = 900 W
    assert dm.predicted()[0] == pytest.approx((2 * 600 * 300 + 1500 * 300) / 900, rel=REL)


def test_thermal_demand_reaches_90_percent_of_a_step_in_the_response_time():
    th = ThermalDemand(1, 900.0)
    for _ in range(900):
        th.update(np.array([1000.0]), 1.0)
    assert th.value[0] == pytest.approx(900.0, rel=1e-9)
    for _ in range(900):
        th.update(np.array([1000.0]), 1.0)
    assert th.value[0] == pytest.approx(990.0, rel=1e-9)


def test_clock_set_backwards_closes_short_and_realigns_forward_jump_counts_empty_subintervals():
    clock = DemandClock(300)
    assert not clock.step(1000).close
    c = clock.step(850)
    assert c.close and c.time_set and c.skipped == 0
    c = clock.step(850 + 3 * 300)           # three subintervals on: two empty ones in between
    assert c.close and c.skipped == 2
    dm = WindowDemand(1, 900, 300)
    dm.accumulate(np.array([900.0 * 300]), 300)
    assert dm.close(skipped=5)[0] == 0.0    # more skipped than the window holds: all empty


def test_sync_pulse_restarts_a_free_running_schedule():
    clock = DemandClock(300, "input")
    clock.step(10)
    assert clock.pulse(123).close
    assert not clock.step(123 + 299).close
    assert clock.step(123 + 300).close
    assert clock.remaining_s(123 + 300) == 300


def test_peaks_keep_time_and_coincident_values():
    pk = PeakDemand(3)
    pk.update(np.array([10.0, 5.0, 20.0]), 100.0)
    new = pk.update(np.array([12.0, 4.0, 15.0]), 200.0)
    assert new.tolist() == [True, False, False]
    assert pk.value.tolist() == [12.0, 5.0, 20.0]
    assert pk.time_s.tolist() == [200.0, 100.0, 100.0]
    assert pk.coincident[0].tolist() == [12.0, 4.0, 15.0]
    assert coincident_pf(12.0, 15.0) == pytest.approx(0.8)
    assert math.isnan(coincident_pf(1.0, 0.0))
    masked = pk.update(np.array([99.0, 99.0, 99.0]), 300.0, mask=np.array([False, True, False]))
    assert masked.tolist() == [False, True, False]


def test_state_round_trip():
    dm = WindowDemand(2, 900, 300)
    dm.accumulate(np.array([1.0, 2.0]), 1.0)
    dm.close()
    dm.accumulate(np.array([3.0, 4.0]), 2.0)
    copy = WindowDemand(2, 900, 300)
    copy.restore(dm.state())
    assert copy.state() == dm.state()
    assert np.allclose(copy.predicted(), dm.predicted())


_pairs = [(m * 60, m * 60 // n) for m in DEMAND_INTERVALS_MIN for n in range(1, 13) if (m * 60) % n == 0]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_pairs), st.integers(0, 10_000),
       st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=40))
def test_window_demand_is_the_mean_of_the_last_interval(pair, t0, levels):
    """Demand at any closure equals the plain mean of the per-second inputs over the interval before it."""
    interval_s, sub_s = pair
    dm, clock = WindowDemand(1, interval_s, sub_s), DemandClock(sub_s)
    # piecewise-constant input changing every sub/2 seconds (at least 1 s)
    step = max(sub_s // 2, 1)
    series = np.repeat(np.array(levels), step)
    t_start = t0
    for k, w in enumerate(series):
        t = t_start + k
        c = clock.step(t)
        if c.close:
            d = dm.close(c.skipped)
            lo = max(0, k - interval_s)
            expected = series[lo:k].sum() / interval_s
            assert d[0] == pytest.approx(expected, rel=1e-9, abs=1e-6)
            assert d[0] <= max(levels) * (1 + 1e-12)
        dm.accumulate(np.array([w]), 1.0)


@settings(max_examples=40, deadline=None)
@given(st.floats(1, 3600), st.floats(-1e5, 1e5, allow_nan=False), st.floats(-1e5, 1e5, allow_nan=False),
       st.integers(1, 500))
def test_thermal_moves_monotonically_toward_a_constant_input(response_s, start, target, steps):
    th = ThermalDemand(1, response_s)
    th.value[:] = start
    last = start
    for _ in range(steps):
        v = th.update(np.array([target]), 1.0)[0]
        assert min(last, target) - 1e-9 <= v <= max(last, target) + 1e-9
        last = v
