"""metrology.gapfill and metrology.crosscheck: the chip path's energy of lost frames, and the two paths compared.

Expected values are worked out by hand in each test from the record energies; the arithmetic is exact up
to float64 rounding, hence rel=1e-12 where nothing but that is involved.
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest

from metrology.crosscheck import PathComparison, nominal_flow
from metrology.energy import EnergyIncrement
from metrology.gapfill import apportion, fill_energy, overlap, phase_gain, split_by_second
from metrology.settings import MetrologySettings

FS = 32000.0
EXACT = 1e-12          # float64 rounding only


@dataclass
class Rec:
    start_index: int
    end_index: int
    wh: tuple
    varh: tuple
    vah: tuple
    timestamp_ns: int = 0


def test_overlap_of_two_ranges():
    assert overlap(10, 20, 15, 40) == 5
    assert overlap(10, 20, 0, 100) == 10
    assert overlap(10, 20, 20, 30) == 0
    assert overlap(10, 20, 30, 40) == 0


def test_each_record_gives_its_energy_times_the_share_of_its_frames_in_the_hole():
    # hole [32000, 34000): the last 1000 frames of record 1 (1/32 of it) and the first 1000 of record 2 (1/32)
    r1 = Rec(1000, 33000, (32.0, -64.0, 0.0), (16.0, 0.0, -8.0), (40.0, 70.0, 9.0))
    r2 = Rec(33000, 65000, (64.0, 0.0, 0.0), (0.0, 0.0, 0.0), (64.0, 0.0, 0.0))
    r3 = Rec(65000, 97000, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))     # outside: no share
    shares = apportion([r1, r2, r3], 32000, 34000)
    assert len(shares) == 2
    assert shares[0].frames == 1000 and shares[1].frames == 1000
    np.testing.assert_allclose(shares[0].wh, [1.0, -2.0, 0.0], rtol=EXACT)
    np.testing.assert_allclose(shares[0].varh, [0.5, 0.0, -0.25], rtol=EXACT)
    np.testing.assert_allclose(shares[0].vah, [1.25, 2.1875, 0.28125], rtol=EXACT)
    np.testing.assert_allclose(shares[1].wh, [2.0, 0.0, 0.0], rtol=EXACT)


def test_a_hole_is_cut_at_whole_clock_seconds():
    # frame 0 is 0.9 s past a whole second: 3200 frames (0.1 s) to the boundary, then 6400 frames in the next
    origin = 1_700_000_000 * 10 ** 9 + 900_000_000
    pieces = split_by_second(0, 9600, origin, FS)
    assert pieces == [(1_700_000_000, 0, pytest.approx(3200.0)), (1_700_000_001, pytest.approx(3200.0), 9600)]
    # a hole longer than a second gives a piece to every second it touches
    pieces = split_by_second(100.5, 100.5 + 2.5 * FS, origin, FS)
    assert [k for k, _, _ in pieces] == [1_700_000_000, 1_700_000_001, 1_700_000_002, 1_700_000_003]
    assert sum(b - a for _, a, b in pieces) == pytest.approx(2.5 * FS)


def test_phase_gain_applies_the_ratios_the_polarity_and_the_system_type():
    s = MetrologySettings(pt_primary=100.0, pt_secondary=1.0, ct_primary=5.0, ct_secondary=1.0,
                          invert=(True, False, False, True, True, True, False))     # IA, VB, IC and VC inverted
    # A: I inverted -> -500; B: V inverted -> -500; C: both inverted -> +500
    np.testing.assert_array_equal(phase_gain(s), [-500.0, -500.0, 500.0])
    np.testing.assert_array_equal(phase_gain(MetrologySettings(system_type="SINGLE")), [1.0, 0.0, 0.0])


def test_fill_splits_every_phase_and_the_total_into_quadrants_by_the_signs_of_wh_and_varh():
    # one record share of 0.5 s with A in Q1 (+3 Wh, +4 varh), B in Q2 (-2 Wh, +1 varh), C in Q4 (+1 Wh,
    # -2 varh); gain 2 (CT ratio). Total: +2 Wh x 2 = +4 Wh, +3 varh x 2 = +6 varh: Q1.
    shares = apportion([Rec(0, 16000, (3.0, -2.0, 1.0), (4.0, 1.0, -2.0), (5.0, 3.0, 2.5))], 0, 16000)
    inc, comp = fill_energy(shares, FS, np.array([2.0, 2.0, 2.0]))
    assert comp is None
    assert inc.duration_s == pytest.approx(0.5) and inc.filled_s == pytest.approx(0.5)
    np.testing.assert_allclose(inc.wh_del, [6.0, 0.0, 2.0, 4.0], rtol=EXACT)
    np.testing.assert_allclose(inc.wh_rec, [0.0, 4.0, 0.0, 0.0], rtol=EXACT)
    np.testing.assert_allclose(inc.varh_del, [8.0, 2.0, 0.0, 6.0], rtol=EXACT)
    np.testing.assert_allclose(inc.varh_rec, [0.0, 0.0, 4.0, 0.0], rtol=EXACT)
    np.testing.assert_allclose(inc.varh_q1, [8.0, 0.0, 0.0, 6.0], rtol=EXACT)
    np.testing.assert_allclose(inc.varh_q2, [0.0, 2.0, 0.0, 0.0], rtol=EXACT)
    np.testing.assert_allclose(inc.varh_q3, [0.0, 0.0, 0.0, 0.0], rtol=EXACT)
    np.testing.assert_allclose(inc.varh_q4, [0.0, 0.0, 4.0, 0.0], rtol=EXACT)
    # VAh (arithmetic) with the direction of Wh; the total is the sum of the phases' VAh
    np.testing.assert_allclose(inc.vah_del, [10.0, 0.0, 5.0, 21.0], rtol=EXACT)
    np.testing.assert_allclose(inc.vah_rec, [0.0, 6.0, 0.0, 0.0], rtol=EXACT)
    # vectorial VAh: hypot(Wh, varh) per phase and of the sums
    np.testing.assert_allclose(inc.vah_vect_del, [10.0, 0.0, math.hypot(2, 4), math.hypot(4, 6)], rtol=EXACT)
    np.testing.assert_allclose(inc.vah_vect_rec, [0.0, math.hypot(4, 2), 0.0, 0.0], rtol=EXACT)
    # Qh = Wh/2 + varh sqrt(3)/2, by its own sign
    qh = np.array([6.0, -4.0, 2.0, 4.0]) / 2 + np.array([8.0, 2.0, -4.0, 6.0]) * math.sqrt(3) / 2
    np.testing.assert_allclose(inc.qh_del - inc.qh_rec, qh, rtol=EXACT)
    # no Ah, V²h, I²h without a reference interval
    assert not inc.ah_del.any() and not inc.v2h_del.any() and not inc.i2h_del.any()


def test_each_record_keeps_its_own_quadrant_when_a_hole_spans_two():
    # phase A delivers in record 1 and receives in record 2; a hole of half of each
    r1 = Rec(0, 32000, (10.0, 0, 0), (2.0, 0, 0), (12.0, 0, 0))
    r2 = Rec(32000, 64000, (-6.0, 0, 0), (-4.0, 0, 0), (8.0, 0, 0))
    inc, _ = fill_energy(apportion([r1, r2], 16000, 48000), FS, np.ones(3))
    assert inc.wh_del[0] == pytest.approx(5.0, rel=EXACT) and inc.wh_rec[0] == pytest.approx(3.0, rel=EXACT)
    assert inc.varh_q1[0] == pytest.approx(1.0, rel=EXACT) and inc.varh_q3[0] == pytest.approx(2.0, rel=EXACT)
    assert inc.vah_del[0] == pytest.approx(6.0, rel=EXACT) and inc.vah_rec[0] == pytest.approx(4.0, rel=EXACT)
    assert inc.duration_s == pytest.approx(1.0)


def test_quantities_without_a_chip_accumulator_take_the_rate_of_the_reference_interval():
    # reference: 0.8 s measured at 230 V, 5 A on every phase; the hole is 0.25 s delivering on A only
    ref = EnergyIncrement(duration_s=0.8)
    ref.v2h_del[:3] = 230.0 ** 2 * 0.8 / 3600
    ref.i2h_del[:3] = 25.0 * 0.8 / 3600
    ref.ah_del[:3] = 5.0 * 0.8 / 3600
    shares = apportion([Rec(0, 8000, (0.1, 0.0, 0.0), (0.0, 0.0, 0.0), (0.1, 0.0, 0.0))], 0, 8000)
    inc, _ = fill_energy(shares, FS, np.ones(3), ref)
    assert inc.v2h_del[0] == pytest.approx(230.0 ** 2 * 0.25 / 3600, rel=EXACT)
    assert inc.i2h_del[0] == pytest.approx(25.0 * 0.25 / 3600, rel=EXACT)
    assert inc.ah_del[0] == pytest.approx(5.0 * 0.25 / 3600, rel=EXACT)
    # phases B and C carry no W: V²h and I²h follow the direction of W (>= 0 is delivered), as in the pipeline
    assert inc.v2h_del[1] == pytest.approx(230.0 ** 2 * 0.25 / 3600, rel=EXACT)


def test_the_compensated_fill_adds_the_loss_power_of_the_reference_interval():
    # reference: 1 s, losses of 20 W and 5 var per phase (compensated minus uncompensated net flow)
    ref = EnergyIncrement(duration_s=1.0)
    ref.wh_del[:] = [1.0, 1.0, 1.0, 3.0]
    ref.varh_del[:] = [0.5, 0.5, 0.5, 1.5]
    ref_comp = EnergyIncrement(duration_s=1.0, compensated=True)
    ref_comp.wh_del[:] = ref.wh_del + np.array([20, 20, 20, 60]) / 3600
    ref_comp.varh_del[:] = ref.varh_del + np.array([5, 5, 5, 15]) / 3600
    shares = apportion([Rec(0, 32000, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (1.2, 1.2, 1.2))], 0, 16000)   # 0.5 s
    inc, comp = fill_energy(shares, FS, np.ones(3), ref, ref_comp, compensated=True)
    assert comp is not None and comp.compensated
    np.testing.assert_allclose(comp.wh_del - inc.wh_del, np.array([20, 20, 20, 60]) * 0.5 / 3600, rtol=1e-9)
    np.testing.assert_allclose(comp.varh_del - inc.varh_del, np.array([5, 5, 5, 15]) * 0.5 / 3600, rtol=1e-9)


def test_no_shares_fill_nothing():
    inc, comp = fill_energy([], FS, np.ones(3), compensated=True)
    assert inc.duration_s == 0 and not inc.wh_del.any() and comp is not None and not comp.wh_del.any()


# --------------------------------------------------------------------------- cross-check

CYCLE = 640                 # 50 Hz at 32 kSPS
T0 = 1_700_000_000 * 10 ** 9


def cycles(lo, hi, watts, var=0.0, va=None):
    start = np.arange(lo, hi, CYCLE, dtype=float)
    flows = np.tile([watts, var, va if va is not None else abs(watts)], (start.size, 1))
    return start, start + CYCLE, flows


def record(k, wh, varh=0.0, vah=None):
    """Record k covers second k; its energy split evenly over the three phases."""
    vah = abs(wh) if vah is None else vah
    return Rec(int(k * FS), int((k + 1) * FS), (wh / 3,) * 3, (varh / 3,) * 3, (vah / 3,) * 3,
               T0 + (k + 1) * 10 ** 9)


def test_the_paths_compare_on_the_frames_both_measured():
    # the samples measure 3000 W, the chip 1 % more; a hole of 3200 frames in second 5 is left out of both
    cmp = PathComparison(FS, np.ones(3), min_flow=10.0, min_common_s=10.0)
    for k in range(12):
        if k == 5:
            cmp.add_cycles(*cycles(k * FS, k * FS + 16000, 3000.0))
            cmp.add_cycles(*cycles(k * FS + 19200, (k + 1) * FS, 3000.0))
        else:
            cmp.add_cycles(*cycles(k * FS, (k + 1) * FS, 3000.0))
        cmp.add_record(record(k, 3000.0 * 1.01 / 3600))
        cmp.update()
    res = cmp.result()
    assert res.records == 12
    assert res.common_s == pytest.approx(12 - 0.1)
    # (3000 - 3030) / 3030
    assert res.difference_pct[0] == pytest.approx(100 * (1 - 1.01) / 1.01, rel=1e-9)
    assert res.difference_pct[2] == pytest.approx(100 * (1 - 1.01) / 1.01, rel=1e-9)
    assert math.isnan(res.difference_pct[1])      # no var on either path: nothing to compare


def test_the_comparison_waits_for_the_cycles_and_needs_enough_common_time():
    cmp = PathComparison(FS, np.ones(3), min_flow=10.0, min_common_s=10.0)
    cmp.add_record(record(0, 1.0))
    assert cmp.update() == 0                             # no cycles yet
    cmp.add_cycles(*cycles(0, 16000, 3600.0))
    assert cmp.update() == 0                             # the cycles have not reached the record's end
    cmp.add_cycles(*cycles(16000, FS, 3600.0))
    assert cmp.update() == 1
    assert math.isnan(cmp.result().difference_pct[0])   # 1 s of common frames, 10 s needed


def test_a_proportional_error_reads_the_same_whichever_way_the_energy_flows():
    # 6 s delivering 1000 W, 6 s receiving 1000 W: net 0. The samples read 0.2 % more magnitude both ways:
    # +0.2 %, not a difference over a net of zero
    cmp = PathComparison(FS, np.ones(3), min_flow=10.0, min_common_s=10.0)
    for k in range(12):
        w = 1000.0 if k < 6 else -1000.0
        cmp.add_cycles(*cycles(k * FS, (k + 1) * FS, w * 1.002))
        cmp.add_record(record(k, w / 3600))
        cmp.update()
    assert cmp.result().difference_pct[0] == pytest.approx(0.2, rel=1e-9)


def test_a_fixed_offset_cancels_between_delivered_and_received():
    # one watt too many: delivered reads 1 W more, received 1 W less, as much time each way
    cmp = PathComparison(FS, np.ones(3), min_flow=10.0, min_common_s=10.0)
    for k in range(12):
        w = 1000.0 if k % 2 else -1000.0
        cmp.add_cycles(*cycles(k * FS, (k + 1) * FS, w + 1.0))
        cmp.add_record(record(k, w / 3600))
        cmp.update()
    assert cmp.result().difference_pct[0] == pytest.approx(0.0, abs=1e-9)


def test_below_the_minimum_flow_there_is_no_figure_and_old_records_leave_the_window():
    cmp = PathComparison(FS, np.ones(3), min_flow=100.0, min_common_s=10.0, window_s=20.0)
    for k in range(15):
        cmp.add_cycles(*cycles(k * FS, (k + 1) * FS, 50.0))
        cmp.add_record(record(k, 50.0 / 3600))
        cmp.update()
    assert math.isnan(cmp.result().difference_pct[0])     # 50 W < 100 W
    for k in range(15, 60):
        cmp.add_cycles(*cycles(k * FS, (k + 1) * FS, 500.0 * 1.002))
        cmp.add_record(record(k, 500.0 / 3600))
        cmp.update()
    res = cmp.result()
    assert res.records == 20 and res.common_s == pytest.approx(20.0)
    assert res.difference_pct[0] == pytest.approx(0.2, rel=1e-9)


def test_nominal_flow_is_phases_times_udin_times_in():
    assert nominal_flow(MetrologySettings(nominal_voltage=230, nominal_current=5)) == pytest.approx(3450.0)
    assert nominal_flow(MetrologySettings(system_type="DELTA", nominal_voltage=400, nominal_current=5)) == \
        pytest.approx(3 * 400 / math.sqrt(3) * 5)
