"""Energy: four quadrants, delivered/received/net/absolute, no blind time, no creep, loss compensation."""
import math

import numpy as np
import pytest

from metrology.energy import EnergyIncrement, cycle_energy, loss_power
from metrology.frequency import SETTLE_S
from metrology.pipeline import Pipeline
from metrology.power import compute_power
from metrology.settings import LossCoefficients, LossCompensation, MetrologySettings
from tests.conformance.signals import balanced, feed


@pytest.mark.parametrize("phi, quad", [(30.0, 1), (150.0, 2), (-150.0, 3), (-30.0, 4)])
def test_each_quadrant_registers_where_the_spec_says(phi, quad):
    pl = Pipeline(MetrologySettings())
    res = feed(pl, balanced(230.0, 5.0, phi), 3.0)
    secs = [s for r in res for s in r.seconds]
    inc = secs[-1].energy
    p = 3 * 230 * 5 * math.cos(math.radians(phi)) / 3600 * inc.duration_s
    q = 3 * 230 * 5 * math.sin(math.radians(phi)) / 3600 * inc.duration_s
    assert inc.wh_del[3] == pytest.approx(max(p, 0), abs=1e-12)
    assert inc.wh_rec[3] == pytest.approx(max(-p, 0), abs=1e-12)
    assert inc.varh_del[3] == pytest.approx(max(q, 0), abs=1e-12)
    assert inc.varh_rec[3] == pytest.approx(max(-q, 0), abs=1e-12)
    for k in range(1, 5):
        assert getattr(inc, f"varh_q{k}")[3] == pytest.approx(abs(q) if k == quad else 0.0, abs=1e-12)
    s = 3 * 230 * 5 / 3600 * inc.duration_s
    assert (inc.vah_del if p > 0 else inc.vah_rec)[3] == pytest.approx(s, rel=1e-9)
    assert inc.net("wh")[3] == pytest.approx(p, rel=1e-9)
    assert inc.absolute("wh")[3] == pytest.approx(abs(p), rel=1e-9)
    assert (inc.ah_del if p > 0 else inc.ah_rec)[3] == pytest.approx(15 / 3600 * inc.duration_s, rel=1e-9)
    assert (inc.v2h_del if p > 0 else inc.v2h_rec)[0] == pytest.approx(230 ** 2 / 3600 * inc.duration_s, rel=1e-9)


def test_no_blind_time_cycles_tile_the_stream():
    pl = Pipeline(MetrologySettings(nominal_frequency=60.0))
    res = feed(pl, balanced(230.0, 5.0, 0.0, f0=59.87), 5.0, block=777)
    secs = [s for r in res for s in r.seconds]
    cycles = [r.cycles for r in res if r.cycles is not None]
    starts = np.concatenate([c.start for c in cycles])
    ends = np.concatenate([c.end for c in cycles])
    assert np.all(starts[1:] == ends[:-1])                 # every cycle starts where the last one ended
    # the first cycle opens at the first zero crossing once the tracker's filter settled (no grid laid from
    # sample 0 that a real crossing would cut at an arbitrary phase)
    fs = MetrologySettings().sample_rate_hz
    assert SETTLE_S * fs <= starts[0] < (SETTLE_S + 1 / 59.87) * fs + 10
    total = sum(s.energy.duration_s for s in secs)
    assert total == pytest.approx(sum(s.duration_s for s in secs))
    assert pl.registers.total.duration_s == pytest.approx(total)
    full = secs[1:]
    for s in full:
        assert s.duration_s == pytest.approx(1.0, abs=1 / 59.87)


def test_open_current_circuit_registers_nothing():
    pl = Pipeline(MetrologySettings())
    sig = balanced(230.0 * 1.15, 0.0, 0.0)                 # 115 % voltage, no current (IEC 62053 creep test)
    rng = np.random.default_rng(1)
    noise = lambda x: x + np.concatenate([rng.normal(0, 5 * 1e-5, (x.shape[0], 1)), np.zeros((x.shape[0], 6))],  # noqa: E731
                                         axis=1)
    feed(pl, sig, 3.0, transform=noise)
    tot = pl.registers.total
    for name in EnergyIncrement.quantities():
        if not name.startswith("v2h"):
            assert np.all(getattr(tot, name) == 0), name


def test_loss_compensation_eei_form():
    losses = LossCompensation(True, va_rated=3_000_000.0, v_cal=230.0, i_cal=100.0,
                              delivered=LossCoefficients(0.1, 0.5, 0.2, 1.0),
                              received=LossCoefficients(0.05, 0.25, 0.1, 0.5))
    v_ms = np.array([[(1.1 * 230) ** 2] * 3])
    i_ms = np.array([[50.0 ** 2] * 3])
    w, var = loss_power(v_ms, i_ms, np.array([[True, True, False]]), np.array([True] * 3), losses)
    va_r = 1_000_000.0
    assert w[0, 0] == pytest.approx((1.21 * 0.1 + 0.25 * 0.5) / 100 * va_r)
    assert var[0, 0] == pytest.approx((1.21 ** 2 * 0.2 + 0.25 * 1.0) / 100 * va_r)
    assert w[0, 2] == pytest.approx((1.21 * 0.05 + 0.25 * 0.25) / 100 * va_r)
    # in the pipeline: added to delivered, subtracted from received
    st = MetrologySettings(losses=LossCompensation(True, 3 * 230 * 5.0, 230.0, 5.0,
                                                   LossCoefficients(1.0, 2.0, 0.0, 0.0),
                                                   LossCoefficients(1.0, 2.0, 0.0, 0.0)))
    for phi, sign in ((0.0, 1), (180.0, -1)):
        pl = Pipeline(st)
        feed(pl, balanced(230.0, 5.0, phi), 2.2)
        raw, comp = pl.registers.total, pl.registers.compensated
        loss_wh = 0.03 * 3 * 230 * 5 / 3600 * raw.duration_s
        assert comp.compensated and comp.net("wh")[3] == pytest.approx(raw.net("wh")[3] + loss_wh, rel=1e-9)
        assert abs(comp.net("wh")[3]) == pytest.approx(abs(raw.net("wh")[3]) + sign * loss_wh, rel=1e-9)


def test_cycle_energy_with_mixed_directions():
    v_ms = np.full((2, 3), 100.0)
    i_ms = np.full((2, 3), 1.0)
    vi = np.array([[10.0, 10, 10], [-10.0, -10, -10]])
    s1 = vi + 0j
    pw = compute_power(v_ms, i_ms, vi, s1, np.ones(3, bool), 0.0, "IEEE")
    inc = cycle_energy(pw, v_ms, i_ms, np.ones((2, 3), bool), np.array([3600.0, 1800.0]))
    assert list(inc.wh_del) == [10, 10, 10, 30] and list(inc.wh_rec) == [5, 5, 5, 15]
    total = EnergyIncrement()
    total.add(inc)
    total.add(inc)
    assert total.wh_del[3] == 60 and total.duration_s == 10800


def test_the_compensated_increment_has_the_start_and_gap_of_its_second():
    """The loss-compensated twin of a second's energy covers the same second: its clock start and its unmeasured
    time (a gap of lost samples) are those of the uncompensated increment, in each increment and in the totals."""
    st = MetrologySettings(losses=LossCompensation(True, 3 * 230 * 5.0, 230.0, 5.0,
                                                   LossCoefficients(1.0, 2.0, 0.0, 0.0),
                                                   LossCoefficients(1.0, 2.0, 0.0, 0.0)))
    pl = Pipeline(st)
    sig, t0, block, fs = balanced(230.0, 5.0, 0.0), 1_700_000_000_000_000_000, 1024, 32000.0
    seconds = []
    for first in range(0, int(4.0 * fs), block):
        if 2 * block * 32 <= first < 2 * block * 32 + 4 * block:       # 4 blocks lost in the third second
            continue
        res = pl.feed_values(sig.samples(first, block), first, t0 + round(first * 1e9 / fs))
        seconds += res.seconds
    assert len(seconds) >= 3 and any(s.energy.gap_s > 0.1 for s in seconds)
    for s in seconds:
        assert s.energy.start_ns == s.start_ns
        assert (s.energy_comp.start_ns, s.energy_comp.gap_s) == (s.energy.start_ns, s.energy.gap_s)
    assert pl.registers.compensated.gap_s == pl.registers.total.gap_s > 0.1


@pytest.mark.parametrize("compensated", [False, True])
def test_an_increment_of_table_rows_is_the_one_the_constructor_makes(compensated):
    rows = np.random.default_rng(3).normal(size=(len(EnergyIncrement.quantities()), 4))
    got = EnergyIncrement.of_rows(rows, 0.9875, compensated)
    want = EnergyIncrement(duration_s=0.9875, compensated=compensated,
                           **dict(zip(EnergyIncrement.quantities(), rows)))
    assert list(vars(got)) == list(vars(want))
    for name, value in vars(want).items():
        np.testing.assert_array_equal(getattr(got, name), value)
        assert type(getattr(got, name)) is type(value)
    assert np.shares_memory(got.wh_del, rows)
    got.add(want)
    np.testing.assert_array_equal(rows, 2 * np.random.default_rng(3).normal(size=rows.shape))
