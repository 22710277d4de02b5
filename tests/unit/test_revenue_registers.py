"""Register storage types, scaling, min/max/average and schedules (metrology/registers.py)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from metrology.energy import EnergyIncrement
from metrology.registers import (
    QUANTITIES,
    RATE_SLOT0,
    TOTAL,
    BillingSchedule,
    EnergyBank,
    IncrementalEnergy,
    MinMaxAvg,
    PeriodDelta,
    average_pf,
    secondary_factor,
    self_read_due,
)


def increment(wh: float, vah: float) -> EnergyIncrement:
    inc = EnergyIncrement(duration_s=1.0)
    inc.wh_del = np.array([wh, wh, wh, 3 * wh])
    inc.vah_del = np.array([vah, vah, vah, 3 * vah])
    return inc


def test_energy_bank_books_phases_total_and_rate():
    bank = EnergyBank()
    bank.add(increment(1.0, 2.0), None, rate=2)
    comp = increment(1.5, 2.5)
    comp.compensated = True
    bank.add(increment(1.0, 2.0), comp, rate=None)
    assert bank.get("wh_del") == 6.0
    assert bank.get("wh_del", 0) == 2.0
    assert bank.get("wh_del", RATE_SLOT0 + 2) == 3.0       # only the first increment had a rate
    assert bank.get("wh_del", compensated=True) == 3.0 + 4.5
    copy = EnergyBank.from_state(bank.state())
    assert np.array_equal(copy.values, bank.values)
    assert len(bank.total_vector()) == len(QUANTITIES)


def test_secondary_scaling_by_family():
    # PT 100:1 and CT 200:1: Wh scale by both, Ah by CT, V²h by PT², I²h by CT²
    assert secondary_factor("wh_del", 100, 200) == pytest.approx(1 / 20000)
    assert secondary_factor("ah_del", 100, 200) == pytest.approx(1 / 200)
    assert secondary_factor("v2h_rec", 100, 200) == pytest.approx(1 / 1e4)
    assert secondary_factor("i2h_del", 100, 200) == pytest.approx(1 / 4e4)
    assert secondary_factor("varh_q3", 100, 200) == pytest.approx(1 / 20000)


def test_average_pf_since_a_reset():
    assert average_pf(1800.0, 1000.0, 2000.0, 1000.0) == pytest.approx(0.8)
    assert math.isnan(average_pf(5.0, 5.0, 7.0, 7.0))


def test_previous_hour_is_the_difference_across_the_hour():
    ph = PeriodDelta(2)
    assert not ph.update(("2024-01-01", 10), np.array([100.0, 5.0]))
    assert not ph.update(("2024-01-01", 10), np.array([150.0, 6.0]))
    assert ph.update(("2024-01-01", 11), np.array([190.0, 9.0]))
    assert ph.previous.tolist() == [90.0, 4.0]
    copy = PeriodDelta(2)
    copy.restore(ph.state())
    assert copy.key == ph.key and copy.previous.tolist() == [90.0, 4.0]


def test_min_max_average_with_times_and_missing_values():
    mm = MinMaxAvg(("v", "f"))
    mm.update(np.array([230.0, 50.0]), 10.0)
    mm.update(np.array([228.0, math.nan]), 11.0)
    mm.update(np.array([233.0, 50.2]), 12.0)
    t = mm.table()
    assert (t["v"]["min"], t["v"]["min_time"], t["v"]["max"], t["v"]["max_time"]) == (228.0, 11.0, 233.0, 12.0)
    assert t["v"]["avg"] == pytest.approx(691.0 / 3)
    assert t["f"]["avg"] == pytest.approx(50.1)
    copy = MinMaxAvg(("v", "f"))
    copy.restore(mm.state())
    assert copy.table() == t
    mm.reset(20.0)
    assert math.isnan(mm.table()["v"]["min"]) and mm.since_s == 20.0


def test_self_read_triggers():
    a, b = datetime(2024, 1, 31, 23, 59, 59), datetime(2024, 2, 1, 0, 0, 0)   # Wednesday -> Thursday
    assert self_read_due(("hourly", "daily", "weekly", "monthly"), a, b, False, False) == \
        ["hourly", "daily", "monthly"]
    sun, mon = datetime(2024, 2, 4, 23, 59, 59), datetime(2024, 2, 5)
    assert self_read_due(("weekly",), sun, mon, False, False) == ["weekly"]
    assert self_read_due(("interval", "bpr"), a, a, True, True) == ["interval", "bpr"]


def test_billing_schedule_month_end_once_and_after_a_jump():
    s = BillingSchedule(day=31, minute=0)
    feb = datetime(2024, 2, 29)                 # leap year: 31 falls back to the 29th
    assert s.due(feb - timedelta(seconds=1), feb, None) == "2024-02"
    assert s.due(feb - timedelta(seconds=1), feb, "2024-02") is None
    apr = datetime(2023, 4, 30)
    assert s.due(apr - timedelta(seconds=1), apr, None) == "2023-04"
    # clock set forward over the reset time, and meter off for days: caught up once
    assert s.due(datetime(2024, 3, 20), datetime(2024, 4, 2), "2024-02") is None   # April's is the 30th
    assert s.due(datetime(2024, 4, 20), datetime(2024, 5, 2), "2024-03") is None   # May's not yet due
    assert s.due(datetime(2024, 5, 30, 12), datetime(2024, 6, 2), "2024-05") is None
    assert s.due(datetime(2024, 5, 29), datetime(2024, 5, 31, 1), "2024-04") == "2024-05"
    # clock set backwards: never fires
    assert s.due(datetime(2024, 6, 1), datetime(2024, 5, 31), None) is None
    assert BillingSchedule().due(datetime(2024, 1, 1), datetime(2024, 2, 1), None) is None


def test_incremental_energy_truncates_the_last_interval():
    # 08:00-13:00 in 3-h steps: 08:00-11:00 and a truncated 11:00-13:00 (ION p.253 example)
    inc = IncrementalEnergy(1, 8 * 60, 13 * 60, 180)
    day = datetime(2024, 1, 1)
    closed = []
    for minute in range(0, 24 * 60):
        closed.append(inc.add(day + timedelta(minutes=minute), np.array([1.0])))
    assert closed.count(True) == 2
    assert inc.previous.tolist() == [120.0]        # the 11:00-13:00 interval, one unit per minute
    assert inc.present.tolist() == [0.0]


def test_total_slot_is_the_phase_sum():
    bank = EnergyBank()
    bank.add(increment(2.0, 3.0), None, 0)
    assert bank.get("wh_del", TOTAL) == sum(bank.get("wh_del", k) for k in range(3))
