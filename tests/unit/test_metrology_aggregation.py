"""Aggregation (IEC 61000-4-30 4.5): 10/12 cycles -> 150/180 cycles, 10 min, 2 h; flags and gaps."""
import math

import numpy as np
import pytest

from metrology.frequency import SETTLE_S
from metrology.intervals import TEN_MIN_NS, ClockAggregator, CountAggregator, Interval, aggregate
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings
from tests.conformance.signals import FS, balanced, feed


def item(start_s, v, p, flagged=False):
    return Interval("cycle10", int(start_s * 1e9), int((start_s + 0.2) * 1e9), 0.2, 10,
                    {"v_ln": np.array([v]), "p": np.array([p]), "q": np.array([0.0]), "s": np.array([abs(p)]),
                     "p1": np.array([p]), "crest": np.array([v / 100])}, flagged)


def test_rms_quantities_aggregate_as_root_mean_square_and_powers_as_means():
    out = aggregate([item(0, 100, 10), item(0.2, 200, 30, flagged=True)], "3s", "IEEE")
    assert out.values["v_ln"][0] == pytest.approx(math.sqrt((100 ** 2 + 200 ** 2) / 2))
    assert out.values["p"][0] == pytest.approx(20.0)
    assert out.values["crest"][0] == pytest.approx(2.0)
    assert out.values["pf"][0] == pytest.approx(1.0)
    assert out.flagged and out.cycles == 20 and out.duration_s == pytest.approx(0.4)


def test_count_aggregator_resynchronises_at_the_ten_minute_tick():
    agg = CountAggregator(15, "3s", "IEEE")
    start = 600 - 2.0        # 10 windows before the tick, then the tick drops the partial group
    outs = [o for k in range(40) for o in agg.add(item(start + 0.2 * k, 230, 1))]
    assert len(outs) == 2
    assert outs[0].start_ns == 600 * 10 ** 9


def test_clock_aggregator_aligns_to_the_clock():
    agg = ClockAggregator(TEN_MIN_NS, "10min", "IEEE")
    outs = [o for k in range(7000) for o in agg.add(item(590 + 0.2 * k, 230, 1))]
    assert [o.start_ns // 10 ** 9 for o in outs] == [0, 600, 1200]
    assert outs[1].cycles == 3000 * 10


def test_pipeline_flags_windows_during_a_dip_and_reports_three_second_values():
    sig = balanced(230.0, 5.0, 0.0, f0=50.0)

    def dip(x, first=[0]):  # noqa: B006  (block counter)
        n = np.arange(first[0], first[0] + x.shape[0])
        first[0] += x.shape[0]
        x = x.copy()
        inside = (n >= 2.0 * FS) & (n < 2.1 * FS)
        x[inside, 1] *= 0.5                # V A-N at 50 % for 100 ms
        return x

    pl = Pipeline(MetrologySettings())
    res = feed(pl, sig, 6.2, transform=dip)
    wins = [w for r in res for w in r.windows]
    flagged = [round(w.start_ns / 1e9 - 1_700_000_000, 1) for w in wins if w.flagged]
    assert flagged and all(1.8 <= t <= 2.2 for t in flagged)
    three = [t for r in res for t in r.three_s]
    assert len(three) >= 1 and three[0].cycles == 150
    secs = [s for r in res for s in r.seconds]
    assert any(s.flagged for s in secs) and not secs[-1].flagged


def test_pipeline_resyncs_windows_and_closes_ten_minutes_at_the_clock_tick():
    pl = Pipeline(MetrologySettings(nominal_frequency=60.0))
    t0 = (1_700_000_000 // 600 + 1) * 600 * 10 ** 9 - int(2.13e9)    # 2.13 s before a 10-min tick
    res = feed(pl, balanced(230.0, 5.0, 0.0, f0=60.0), 4.5, t0_ns=t0)
    wins = [w for r in res for w in r.windows]
    tick = t0 + int(2.13e9)
    assert any(w.end_ns <= tick + 20_000_000 and w.cycles < 12 for w in wins)   # the short window
    after = [w for w in wins if w.start_ns >= tick]
    assert after and after[0].start_ns - tick < 17_000_000                      # restarted at the tick
    ten = [t for r in res for t in r.ten_min]
    assert len(ten) == 1 and ten[0].end_ns == tick
    assert ten[0].values["v_ln"][0] == pytest.approx(230.0, rel=1e-8)


def test_a_gap_restarts_the_windows_flags_the_intervals_and_reports_lost_time():
    sig = balanced(230.0, 5.0, 0.0)
    pl = Pipeline(MetrologySettings())
    t0 = 1_700_000_000_000_000_000
    results = []
    block = 1024
    for first in list(range(0, 64 * block, block)) + list(range(80 * block, 160 * block, block)):
        restart = first == 80 * block
        lost = 16 * block if restart else 0
        results.append(pl.feed_values(sig.samples(first, block), first, t0 + round(first * 1e9 / FS),
                                      restart, lost))
    assert sum(r.gap for r in results) == 1
    secs = [s for r in results for s in r.seconds]
    lost = sum(s.energy.gap_s for s in secs)
    # the unmeasured time: the lost frames, the partial cycles around them and the tracker settling after them
    assert 16 * block / FS < lost < 16 * block / FS + SETTLE_S + 2 / 50
    gapped = [s for s in secs if s.gap]
    assert gapped
    # energy: what was measured, never what was lost
    measured = sum(s.energy.duration_s for s in secs)
    wh = sum(s.energy.wh_del[3] for s in secs)
    assert wh == pytest.approx(3 * 230 * 5 * measured / 3600, rel=1e-9)
    assert measured < 160 * block / FS - lost + 1e-9


def test_ten_minute_values_carry_their_ten_second_frequencies_flagged_ones_left_out():
    """A 10-min value holds the 10-s frequencies (IEC 61000-4-30 5.1) of its slots; the slot with a dip is
    flagged (4.7) and carries NaN, as do the slots before the signal began."""
    tick_s = (1_700_000_000 // 600 + 1) * 600
    t0 = tick_s * 10 ** 9 - 25 * 10 ** 9                # 25 s before a 10-min tick
    sig = balanced(230.0, 5.0, 0.0, f0=49.9)

    def dip(x, first=[0]):  # noqa: B006  (block counter)
        n = np.arange(first[0], first[0] + x.shape[0])
        first[0] += x.shape[0]
        x = x.copy()
        x[(n >= 12.0 * FS) & (n < 12.1 * FS), 1] *= 0.5      # 12 s in: inside the slot 20-10 s before the tick
        return x

    pl = Pipeline(MetrologySettings())
    res = feed(pl, sig, 26.0, t0_ns=t0, transform=dip)
    (ten,) = [t for r in res for t in r.ten_min]
    f = ten.values["freq_10s"]
    assert f.shape == (60,)
    assert np.isnan(f[:57]).all() and math.isnan(f[58])
    # IEC 61000-4-30 Class A: ±10 mHz
    assert f[57] == pytest.approx(49.9, abs=0.01) and f[59] == pytest.approx(49.9, abs=0.01)
    assert all("freq_10s" not in t.values for r in res for t in r.two_h)


@pytest.mark.parametrize("signalling", [(), (316.67, 1050.0)])
def test_the_aggregations_add_the_flat_array_a_window_s_values_are_views_of(signalling):
    """A window's values come as views of one flat array in the order of its keys, which the aggregations add as it
    is: the 3-s values are those of its 15 windows aggregated from their values."""
    from metrology import deviation

    pl = Pipeline(MetrologySettings(nominal_frequency=50.0, signalling_hz=signalling))
    results = feed(pl, balanced(230.0, v_harm=[(5, 0.05, 30.0)]), 4.0)
    windows = [w for r in results for w in r.windows]
    threes = [t for r in results for t in r.three_s]
    assert len(threes) >= 1 and ("msv" in windows[0].values) == bool(signalling)
    first = windows[0].values
    assert all(v.base is not None and v.base is first["v_ln"].base for v in first.values())
    assert first["h_mag"].shape == (10, 64) and first["thd"].shape == (10,) and first["v_under"].shape == (3,)
    start = next(k for k, w in enumerate(windows) if w.start_ns == threes[0].start_ns)
    want = aggregate(windows[start:start + 15], "3s", "IEEE")
    deviation.annotate(want.values, pl.settings.nominal_voltage)      # as the pipeline does its 3-s values
    assert list(threes[0].values) == list(want.values)
    for k in want.values:
        np.testing.assert_array_equal(threes[0].values[k], want.values[k])


@pytest.mark.parametrize("convention", ["IEEE", "IEC"])
def test_power_factors_are_signed_pf_and_quadrant_to_the_bit(convention):
    """The aggregated power factors and quadrants, worked on Python floats, are power.signed_pf's and quadrant's:
    signs of W and var, zero, NaN and infinite powers, VA zero or below |W|."""
    from metrology.intervals import power_factors
    from metrology.power import quadrant, signed_pf

    specials = [0.0, -0.0, 1.0, -1.0, 3.5, -2.25, 1e-300, np.nan, np.inf, -np.inf]
    rng = np.random.default_rng(7)
    for _ in range(300):
        p, q, p1 = (rng.choice(specials, 4) * rng.uniform(0.5, 2.0, 4) for _ in range(3))
        s = np.abs(rng.choice(specials, 4)) * rng.choice([0.5, 1.0, 4.0], 4)
        pf, dpf, quad = power_factors(p, q, s, p1, convention)
        with np.errstate(all="ignore"):          # 0 * inf: NaN, as the floats give it
            want = (signed_pf(p, q, s, convention), signed_pf(p1, q, np.hypot(p1, q), convention),
                    quadrant(p, q).astype(np.float64))
        for got, expected in zip((pf, dpf, quad), want, strict=True):
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_a_window_copied_or_pickled_before_its_values_were_asked_for_has_them():
    import copy
    import pickle

    pl = Pipeline(MetrologySettings(nominal_frequency=50.0))
    windows = [w for r in feed(pl, balanced(230.0), 1.0) for w in r.windows]
    fresh, named = windows[-1], windows[-2]
    want = {k: v.copy() for k, v in named.values.items()}
    assert len(want) > 30
    for window in (fresh, named):
        for twin in (copy.copy(window), copy.deepcopy(window), pickle.loads(pickle.dumps(window))):
            assert list(twin.values) == list(want)
            assert twin.kind == "cycle10" and twin.start_ns == window.start_ns
    for k, v in want.items():
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(named)).values[k], v)
