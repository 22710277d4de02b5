"""What a gap in the samples does to the pipeline: every cycle stays one whole period (so the fundamental and the
reactive energy stay exact), the 1-s interval and the 10-s frequency go on across it and are flagged, and the
unmeasured time is reported once."""
import math

import numpy as np
import pytest

from metrology.energy import EnergyIncrement
from metrology.frequency import BRIDGE_MAX_S, SETTLE_S
from metrology.pipeline import Pipeline
from metrology.publish import publish
from metrology.settings import MetrologySettings
from tests.conformance.signals import FS, balanced

T0 = 1_700_000_000_000_000_000
BLOCK = 128


def run_with_gaps(f0: float, seconds: float, every: int, lost_blocks: int = 1, phi_deg: float = 30.0):
    """``seconds`` of a balanced 230 V / 10 A load at ``f0``, ``lost_blocks`` blocks of 4 ms lost every
    ``every`` blocks (flagged GAP with their count, as the HAL does)."""
    sig = balanced(230.0, 10.0, phi_deg, f0=f0)
    pl = Pipeline(MetrologySettings(nominal_frequency=60.0 if f0 > 55 else 50.0))
    results = []
    skip = 0
    flag = 0
    for b in range(int(seconds * FS) // BLOCK):
        if skip:
            skip -= 1
            continue
        if every and b % every == every - 1:
            skip, flag = lost_blocks - 1, lost_blocks * BLOCK
            continue
        first = b * BLOCK
        results.append(pl.feed_values(sig.samples(first, BLOCK), first, T0 + round(first * 1e9 / FS),
                                      bool(flag), flag))
        flag = 0
    return pl, results


@pytest.mark.parametrize("f0, every", [(50.03, 250), (49.8, 50), (60.9, 37)])
def test_after_a_gap_every_cycle_is_one_period_and_reactive_energy_stays_exact(f0, every):
    pl, results = run_with_gaps(f0, 30.0, every)
    cycles = [r.cycles for r in results if r.cycles is not None]
    lengths = np.concatenate([c.duration_s for c in cycles]) * f0
    # a free-running grid laid from the first sample after the gap would be cut by the first real crossing at
    # an arbitrary phase: one cycle of 0.5..1.5 periods per gap, its fundamental (one DFT bin) wrong
    assert np.abs(lengths - 1).max() < 1e-3
    tot = pl.registers.total
    p = (tot.wh_del - tot.wh_rec)[3] * 3600 / tot.duration_s
    q = (tot.varh_del - tot.varh_rec)[3] * 3600 / tot.duration_s
    assert p == pytest.approx(3 * 230 * 10 * math.cos(math.radians(30)), rel=1e-6)
    assert q == pytest.approx(3 * 230 * 10 * math.sin(math.radians(30)), rel=1e-6)
    # what was not measured is reported once, in the second where it began: the closed seconds' measured and
    # unmeasured time run from the first cycle's start to the start of the first cycle they do not hold
    secs = [s for r in results for s in r.seconds]
    starts = np.concatenate([c.start for c in cycles]) / FS
    measured = sum(s.energy.duration_s for s in secs)
    unmeasured = sum(s.energy.gap_s for s in secs)
    assert starts[0] + measured + unmeasured == pytest.approx(starts[sum(s.cycles for s in secs)], abs=1e-9)


def test_one_interval_per_clock_second_across_gaps_and_the_gap_seconds_flagged():
    pl, results = run_with_gaps(50.0, 20.0, every=125)          # a 4-ms gap every 0.5 s
    secs = [s for r in results for s in r.seconds]
    keys = [s.start_ns // 10**9 for s in secs]
    # before, every gap closed the open second early and the same second closed again after it: 3 per second
    assert keys == list(range(keys[0], keys[0] + len(keys)))
    assert len(secs) == 19
    assert all(s.gap for s in secs)
    assert all(0.9 < s.duration_s + s.energy.gap_s <= 1.0 + 1e-9 for s in secs[1:])


def test_a_lone_gap_flags_its_second_and_the_next_only():
    pl, results = run_with_gaps(50.0, 8.5, every=0)
    sig = balanced(230.0, 10.0, 30.0)
    first = int(8.5 * FS)
    for k in range(int(4.0 * FS) // BLOCK):
        at = first + (k + 3) * BLOCK               # 3 blocks (12 ms) lost at 8.5 s
        results.append(pl.feed_values(sig.samples(at, BLOCK), at, T0 + round(at * 1e9 / FS),
                                      k == 0, 3 * BLOCK if k == 0 else 0))
    secs = {int(s.start_ns // 10**9 - T0 // 10**9): s for r in results for s in r.seconds}
    assert [k for k, s in sorted(secs.items()) if s.gap] == [8]
    # the lost frames and the partial cycles on either side: the tracker bridged the gap, no settling after it
    lost = 3 * BLOCK / FS
    assert lost < secs[8].energy.gap_s <= lost + 2 / 50 + 1e-9
    resumed = first + 3 * BLOCK
    after = np.concatenate([r.cycles.start for r in results if r.cycles is not None])
    assert after[after >= resumed][0] - resumed < FS / 50             # the first crossing after it, not 40 ms on


def test_the_ten_second_frequency_survives_gaps_flagged_and_a_one_cycle_value_comes_at_once():
    pl, results = run_with_gaps(49.93, 41.0, every=250)         # a gap every second
    f10 = [(t, f) for r in results for t, f in r.frequency_10s]
    # every 10-s interval has a value (before: each gap restarted the interval, NaN at 5 gaps a second)
    assert len(f10) == 4
    assert all(f == pytest.approx(49.93, abs=1e-4) for _, f in f10)
    secs = [s for r in results for s in r.seconds]
    flagged = [s.values["freq_10s_flagged"][0] for s in secs if np.isfinite(s.values["freq_10s"][0])]
    assert flagged and all(v == 1.0 for v in flagged)
    # the 1-cycle value is there in the first second, long before the first 10-s value
    first = publish(dict(secs[0].values), EnergyIncrement())
    assert first["frequency_1cycle"] == pytest.approx(49.93, abs=1e-3)
    assert math.isnan(first["frequency"])


def test_without_gaps_the_ten_second_frequency_is_not_flagged():
    pl, results = run_with_gaps(50.0, 21.0, every=0)
    secs = [s for r in results for s in r.seconds]
    assert [t for r in results for t, _ in r.frequency_10s]
    assert not any(s.values["freq_10s_flagged"][0] for s in secs)
    assert not any(s.gap for s in secs)


def test_a_long_gap_restarts_the_tracker_and_waits_for_it_to_settle():
    pl, results = run_with_gaps(50.0, 4.5, every=0)
    sig = balanced(230.0, 10.0, 30.0)
    lost = int(2 * BRIDGE_MAX_S * FS) // BLOCK * BLOCK           # too long to bridge
    first = int(4.5 * FS) // BLOCK * BLOCK + lost
    for k in range(int(3.0 * FS) // BLOCK):
        at = first + k * BLOCK
        results.append(pl.feed_values(sig.samples(at, BLOCK), at, T0 + round(at * 1e9 / FS),
                                      k == 0, lost if k == 0 else 0))
    secs = [s for r in results for s in r.seconds]
    unmeasured = sum(s.energy.gap_s for s in secs)
    assert lost / FS + SETTLE_S < unmeasured <= lost / FS + SETTLE_S + 2 / 50 + 1e-9
    cycles = np.concatenate([r.cycles.duration_s for r in results if r.cycles is not None]) * 50.0
    assert np.abs(cycles - 1).max() < 1e-6
