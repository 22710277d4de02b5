"""The flickermeter against the test points of IEC 61000-4-15:2010 (Ed.2).

Tables 1a/1b (sinusoidal modulation) and 2a/2b (rectangular modulation) give, per modulation frequency, the
relative voltage change ΔV/V (%) for which the maximum of Pinst is 1.00; the standard's tolerance is ±8 %.
Table 5 gives the rectangular changes (changes per minute, ΔV/V %) for which Pst is 1.00; class F1 allows
±5 %, the project aims at ±2 %. The ΔV/V figures are the Ed.2 values as transcribed in the CMI/QWTB
flicker_sim verification script (verify_flicker_sim.m, IEC edition 3 = Ed.2 2010) and are the same for the
four supplies where the standard gives them. Every point runs as one channel of one FlickerMeter, so a
table is one pass over a few tens of seconds (Pinst) or 12 minutes (Pst) sampled at 8 kHz (the chain
decimates to ~1 kHz from any rate); two Table 5 points also run at the meter's 32 kHz.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from metrology.flicker import WARMUP_S, FlickerMeter, plt_from_pst, pst_from_pinst
from metrology.intervals import Interval
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings

# The fastest rectangular points (square waves at 33-40 Hz) come out 2-6 % high at 4 kHz and within 2.6 % from
# 8 kHz up (sharper edges): the tables run at 8 kHz
FS_HZ = 8000.0
PST_FS_HZ = FS_HZ
NS = 1_000_000_000

# Table 1a/1b and 2a/2b modulation frequencies (Hz); CPM = 120 * f (two changes per period)
_F_SIN = [*np.arange(0.5, 8.01, 0.5), 8.8, *np.arange(9.5, 12.01, 0.5), *range(13, 26)]
_F_RECT = [*np.arange(0.5, 8.01, 0.5), 8.8, *np.arange(9.5, 12.01, 0.5), *range(13, 22), 21.5, *range(22, 26),
           25.5, 28, 30.5]
F3 = 33 + 1 / 3

SINUSOIDAL = {   # (lamp V, mains Hz): (modulation Hz, ΔV/V %) for Pinst,max = 1 (Tables 1a, 1b)
    (230, 50): (_F_SIN + [F3], [
        2.325, 1.397, 1.067, 0.879, 0.747, 0.645, 0.564, 0.497, 0.442, 0.396, 0.357, 0.325, 0.3, 0.280, 0.265,
        0.256, 0.250, 0.254, 0.261, 0.271, 0.283, 0.298, 0.314, 0.351, 0.393, 0.438, 0.486, 0.537, 0.590,
        0.646, 0.704, 0.764, 0.828, 0.894, 0.964, 1.037, 2.128]),
    (120, 60): (_F_SIN + [F3, 40], [
        2.453, 1.465, 1.126, 0.942, 0.815, 0.717, 0.637, 0.570, 0.514, 0.466, 0.426, 0.393, 0.366, 0.346,
        0.332, 0.323, 0.321, 0.329, 0.341, 0.355, 0.373, 0.394, 0.417, 0.469, 0.528, 0.592, 0.660, 0.734,
        0.811, 0.892, 0.977, 1.067, 1.160, 1.257, 1.359, 1.464, 2.570, 4.393]),
    (120, 50): (_F_SIN + [F3], [
        2.453, 1.465, 1.126, 0.942, 0.815, 0.717, 0.637, 0.570, 0.514, 0.466, 0.426, 0.393, 0.366, 0.346,
        0.332, 0.323, 0.321, 0.329, 0.341, 0.355, 0.373, 0.394, 0.417, 0.469, 0.528, 0.592, 0.660, 0.734,
        0.811, 0.892, 0.978, 1.068, 1.162, 1.261, 1.365, 1.476, 3.111]),
    (230, 60): (_F_SIN + [F3, 40], [
        2.325, 1.397, 1.067, 0.879, 0.747, 0.645, 0.564, 0.497, 0.442, 0.396, 0.357, 0.325, 0.3, 0.280, 0.265,
        0.256, 0.250, 0.254, 0.261, 0.271, 0.283, 0.298, 0.314, 0.351, 0.393, 0.438, 0.486, 0.537, 0.590,
        0.645, 0.703, 0.764, 0.826, 0.892, 0.959, 1.029, 1.758, 2.963]),
}

RECTANGULAR = {  # (lamp V, mains Hz): (modulation Hz, ΔV/V %) for Pinst,max = 1 (Tables 2a, 2b)
    (230, 50): (_F_RECT + [F3], [
        0.509, 0.467, 0.429, 0.398, 0.370, 0.352, 0.342, 0.332, 0.312, 0.291, 0.268, 0.248, 0.231, 0.216,
        0.207, 0.199, 0.196, 0.199, 0.203, 0.212, 0.222, 0.233, 0.245, 0.272, 0.308, 0.341, 0.376, 0.411,
        0.446, 0.497, 0.553, 0.585, 0.592, 0.612, 0.680, 0.743, 0.764, 0.806, 0.915, 0.847, 1.671]),
    (120, 60): (_F_RECT + [F3, 37, 40], [
        0.598, 0.548, 0.503, 0.469, 0.439, 0.419, 0.408, 0.394, 0.373, 0.348, 0.324, 0.302, 0.283, 0.269,
        0.258, 0.253, 0.252, 0.258, 0.266, 0.278, 0.292, 0.308, 0.324, 0.367, 0.411, 0.457, 0.509, 0.575,
        0.626, 0.688, 0.746, 0.815, 0.837, 0.851, 0.946, 1.067, 1.088, 1.072, 1.383, 1.602, 1.823, 1.304,
        3.451]),
    (120, 50): (_F_RECT + [F3], [
        0.597, 0.547, 0.503, 0.468, 0.438, 0.420, 0.408, 0.394, 0.372, 0.348, 0.323, 0.302, 0.283, 0.269,
        0.259, 0.253, 0.252, 0.258, 0.265, 0.278, 0.293, 0.308, 0.325, 0.363, 0.413, 0.460, 0.511, 0.562,
        0.611, 0.683, 0.768, 0.811, 0.820, 0.852, 0.957, 1.052, 1.087, 1.148, 1.303, 1.144, 2.443]),
    (230, 60): (_F_RECT + [F3, 37, 40], [
        0.510, 0.468, 0.429, 0.399, 0.371, 0.351, 0.342, 0.331, 0.313, 0.291, 0.269, 0.249, 0.231, 0.217,
        0.206, 0.200, 0.196, 0.199, 0.203, 0.212, 0.222, 0.233, 0.244, 0.275, 0.306, 0.338, 0.376, 0.420,
        0.457, 0.498, 0.537, 0.584, 0.600, 0.611, 0.678, 0.753, 0.778, 0.768, 0.962, 1.105, 1.258, 0.975,
        2.327]),
}

PST_TABLE = {    # (lamp V, mains Hz): (changes per minute, ΔV/V %) for Pst = 1 (Table 5)
    (230, 50): ([1, 2, 7, 39, 110, 1620, 4000], [2.715, 2.191, 1.450, 0.894, 0.722, 0.407, 2.343]),
    (120, 60): ([1, 2, 7, 39, 110, 1620, 4800], [3.181, 2.564, 1.694, 1.040, 0.844, 0.548, 4.837]),
    (120, 50): ([1, 2, 7, 39, 110, 1620, 4000], [3.178, 2.561, 1.694, 1.045, 0.844, 0.545, 3.426]),
    (230, 60): ([1, 2, 7, 39, 110, 1620, 4800], [2.719, 2.194, 1.450, 0.895, 0.723, 0.409, 3.263]),
}

PINST_TOL = 0.08     # IEC 61000-4-15 Ed.2, Tables 1 and 2: Pinst,max = 1.00 ± 8 %
PST_TOL = 0.02       # class F1 allows ± 5 % (Table 5); the project's goal is ± 2 %


def _modulated(lamp: int, mains: float, f_mod: np.ndarray, dvv_pct: np.ndarray, t: np.ndarray,
               rectangular: bool, phase_s: float = 0.0) -> np.ndarray:
    """(n, points) voltages: sqrt(2) U sin(2π f t) (1 + ΔV/V / 2 · m(t)), m a unit sine or square wave."""
    arg = 2 * np.pi * f_mod[None, :] * (t[:, None] - phase_s)
    m = np.sign(np.sin(arg)) if rectangular else np.cos(arg)
    return lamp * math.sqrt(2) * np.sin(2 * np.pi * mains * t)[:, None] * (1 + dvv_pct[None, :] / 200 * m)


def _feed(meter: FlickerMeter, signal, seconds: float, fs: float, t0_s: float, block: int = 8192) -> list:
    """Feed ``signal(t)`` (t: times from 0, s) for ``seconds``, generated block by block to bound memory."""
    out = []
    n = int(round(seconds * fs))
    for i in range(0, n, block):
        t = np.arange(i, min(i + block, n)) / fs
        out += meter.process(signal(t), int(round((t0_s + i / fs) * NS)))
    return out + meter.flush()


def _pinst_max(lamp: int, mains: float, f_mod: list, dvv: list, rectangular: bool) -> np.ndarray:
    """Pinst max over 20 s after 20 s of settling (the first interval), every table point a channel."""
    f, d = np.asarray(f_mod), np.asarray(dvv)
    meter = FlickerMeter(FS_HZ, mains, lamp, channels=len(dvv), interval_s=20)
    closed = _feed(meter, lambda t: _modulated(lamp, mains, f, d, t, rectangular), 40.0, FS_HZ, 0.0)
    assert [c.start_ns for c in closed] == [0, 20 * NS]
    return closed[-1].pinst_max


@pytest.mark.parametrize("supply", list(SINUSOIDAL))
def test_pinst_sinusoidal_tables_1a_1b(supply):
    lamp, mains = supply
    f_mod, dvv = SINUSOIDAL[supply]
    assert len(f_mod) == len(dvv)
    pmax = _pinst_max(lamp, mains, f_mod, dvv, rectangular=False)
    worst = int(np.argmax(np.abs(pmax - 1)))
    assert np.all(np.abs(pmax - 1) <= PINST_TOL), (f_mod[worst], pmax[worst])


@pytest.mark.parametrize("supply", list(RECTANGULAR))
def test_pinst_rectangular_tables_2a_2b(supply):
    lamp, mains = supply
    f_mod, dvv = RECTANGULAR[supply]
    assert len(f_mod) == len(dvv)
    pmax = _pinst_max(lamp, mains, f_mod, dvv, rectangular=True)
    worst = int(np.argmax(np.abs(pmax - 1)))
    assert np.all(np.abs(pmax - 1) <= PINST_TOL), (f_mod[worst], pmax[worst])


def _pst(lamp: int, mains: float, cpm: list, dvv: list, fs: float) -> np.ndarray:
    """Pst of the clock interval 600..1200 s after 120 s of settling (480..600 s, the interval before, has too
    little Pinst and is NaN). The first change comes 1 s into the interval (Table 5, note: within 5 s)."""
    f_mod, d = np.asarray(cpm, dtype=float) / 120.0, np.asarray(dvv)
    meter = FlickerMeter(fs, mains, lamp, channels=len(dvv))
    # the square wave's first change at 601 s: sign(sin) changes where its argument crosses k π
    closed = _feed(meter, lambda t: _modulated(lamp, mains, f_mod, d, t + 480.0, True, phase_s=601.0),
                   720.0, fs, 480.0)
    assert [c.start_ns // NS for c in closed] == [0, 600]
    assert np.all(np.isnan(closed[0].pst))
    assert closed[1].covered_s == pytest.approx(600.0, abs=0.05)
    return closed[1].pst


@pytest.mark.parametrize("supply", list(PST_TABLE))
def test_pst_table_5(supply):
    lamp, mains = supply
    cpm, dvv = PST_TABLE[supply]
    pst = _pst(lamp, mains, cpm, dvv, PST_FS_HZ)
    worst = int(np.argmax(np.abs(pst - 1)))
    assert np.all(np.abs(pst - 1) <= PST_TOL), (cpm[worst], pst[worst])


def test_pst_at_the_meter_sample_rate():
    """Table 5, 230 V 50 Hz, 39 and 4000 changes per minute at the meter's 32 kHz."""
    pst = _pst(230, 50.0, [39, 4000], [0.894, 2.343], 32000.0)
    assert np.all(np.abs(pst - 1) <= PST_TOL), pst


def test_pst_statistics_of_known_distributions():
    # constant Pinst c: every percentile is c, Pst = sqrt(c · sum of weights) (0.5096 c)
    assert pst_from_pinst(np.full(1000, 4.0)) == pytest.approx(math.sqrt(4.0 * 0.5096))
    # uniform 0..1: P_x = 1 - x/100, so the weights meet known levels (exact to the interpolation, 1e-3)
    x = np.linspace(0.0, 1.0, 60001)
    expected = math.sqrt(0.0314 * 0.999 + 0.0525 * (1 - 0.0106667) + 0.0657 * (1 - 0.0306667)
                         + 0.28 * (1 - 0.108) + 0.08 * (1 - 0.5333333))
    assert pst_from_pinst(x) == pytest.approx(expected, rel=1e-6)
    assert math.isnan(pst_from_pinst(np.array([])))


def test_plt_is_the_cube_mean_of_twelve_pst():
    pst = np.array([[1.0, 0.5]] * 11 + [[2.0, 0.5]])
    plt = plt_from_pst(pst)
    assert plt[0] == pytest.approx(((11 + 8) / 12) ** (1 / 3), rel=1e-12)
    assert plt[1] == pytest.approx(0.5, rel=1e-12)
    assert np.isnan(plt_from_pst(pst[:11])).all()          # fewer than 12: no Plt
    pst[3, 0] = np.nan
    assert np.isnan(plt_from_pst(pst)[0]) and plt_from_pst(pst)[1] == pytest.approx(0.5)


def test_streaming_plt_over_clock_aligned_intervals_and_restart():
    """Steady flicker in 10-s intervals: equal Pst, and a Plt of twelve of them equal to that Pst. A restart
    costs the interval only the first cycles and WARMUP_S (1.2 s), not its Pst; an interval the meter saw
    less than 2/3 of has none."""
    fs, interval = 4000.0, 10
    block = np.arange(int(interval * fs)) / fs          # 500 mains and 88 modulation periods: blocks join
    u = _modulated(230, 50.0, np.array([8.8]), np.array([0.5]), block, rectangular=False)
    meter = FlickerMeter(fs, 50.0, 230, channels=1, interval_s=interval)
    closed = []
    for k in range(14):
        closed += meter.process(u, k * interval * NS)
    assert [c.start_ns // NS for c in closed] == [k * interval for k in range(13)]
    # sinusoidal 8.8 Hz at twice the threshold ΔV/V: Pinst 4 (it goes with the square), steady
    assert closed[-1].pinst_max[0] == pytest.approx(4.0, rel=0.02)
    assert closed[0].covered_s == pytest.approx(interval - 0.2 - WARMUP_S, abs=0.02)
    ps = np.array([meter.pst(k * interval * NS)[0] for k in range(13)])
    assert np.all(np.abs(ps - ps[1]) < 0.005 * ps[1])
    assert meter.plt(0)[0] == pytest.approx(ps[1], rel=0.005)
    assert meter.last_plt[0] == pytest.approx(ps[1], rel=0.005)      # closed with the 12th interval
    assert np.isnan(meter.plt(2 * interval * NS)).all()   # its 12th interval has not closed
    assert np.isnan(meter.pst(13 * interval * NS)).all()

    meter = FlickerMeter(fs, 50.0, 230, channels=1, interval_s=interval)
    for k in range(5):
        if k == 3:
            meter.restart()
        meter.process(u, k * interval * NS)
    ps = [meter.pst(k * interval * NS)[0] for k in range(4)]
    assert ps[3] == pytest.approx(ps[2], rel=0.005)

    meter = FlickerMeter(fs, 50.0, 230, channels=1, interval_s=interval)
    half = u.shape[0] // 2          # the meter starts 5 s into the interval: 3.8 s of it covered
    meter.process(u[half:], 5 * NS)
    meter.process(u, interval * NS)
    meter.process(u, 2 * interval * NS)
    assert np.isnan(meter.pst(0)).all() and np.isfinite(meter.pst(interval * NS)).all()


def test_rejects_what_it_cannot_measure():
    with pytest.raises(ValueError, match="2 kHz"):
        FlickerMeter(1000.0)
    with pytest.raises(ValueError, match="50 or 60"):
        FlickerMeter(32000.0, 55.0)
    with pytest.raises(ValueError, match="230 or 120"):
        FlickerMeter(32000.0, 50.0, lamp_v=100)


def test_pipeline_publishes_pinst_and_the_ten_minute_pst():
    """Through the whole pipeline at 32 kHz (4W-WYE, 50 Hz): phase a carries Table 5's 39 changes per minute
    (Pst 1.00), phase b sinusoidal 8.8 Hz at twice the threshold ΔV/V (Pinst 4.0, Pst sqrt(4 · 0.5096)),
    phase c is steady. The signal starts 150 s into the first 10-min interval: 450 s of Pinst cover it.
    Tolerance: ± 2 % (the project's Pst goal; Tables 1 and 2 allow ± 8 % for Pinst, met within 2.3 %)."""
    fs, t0_s, t_end_s = 32000.0, 150.0, 601.0
    pipeline = Pipeline(MetrologySettings())
    shift = np.array([0.0, -2 * np.pi / 3, 2 * np.pi / 3])

    def inputs(t: np.ndarray) -> np.ndarray:
        x = np.zeros((t.size, 7))
        mod = np.stack([1 + 0.894 / 200 * np.sign(np.sin(2 * np.pi * 39 / 120 * (t - 151.0))),
                        1 + 0.5 / 200 * np.cos(2 * np.pi * 8.8 * t), np.ones_like(t)], axis=1)
        x[:, [1, 3, 5]] = 230 * math.sqrt(2) * np.sin(2 * np.pi * 50 * t[:, None] + shift) * mod
        return x

    ten_min, seconds = [], []
    block = 4096
    for first in range(0, int((t_end_s - t0_s) * fs), block):
        t = t0_s + np.arange(first, first + block) / fs
        out = pipeline.feed_values(inputs(t), first, int(round(t[0] * NS)))
        ten_min += out.ten_min
        seconds += out.seconds
    assert [iv.start_ns for iv in ten_min] == [0]
    pst = ten_min[0].values["pst"]
    assert pst[0] == pytest.approx(1.0, rel=0.02)
    assert pst[1] == pytest.approx(math.sqrt(4 * 0.5096), rel=0.02)
    assert pst[2] < 0.05
    last = seconds[-1].values
    # Pinst of the 8.8 Hz sine swings at 17.6 Hz by ± 3 % of its mean (what is left after the 300 ms
    # smoothing): from 4 (1 - 0.03) / (1 + 0.03) = 3.77 to its maximum 4.0, then the 2 % tolerance
    assert 3.77 * 0.98 <= last["pinst"][1] <= 4.0 * 1.02 and last["pinst"][2] < 0.01
    np.testing.assert_allclose(last["pst"], pst)
    assert np.isnan(last["plt"]).all()


def test_pipeline_flicker_of_absent_phases_is_nan():
    pipeline = Pipeline(MetrologySettings(system_type="SINGLE"))
    values: dict[str, np.ndarray] = {}
    pipeline.flicker.annotate_second(values)
    assert np.isnan(values["pinst"][1:]).all() and np.isnan(values["pst"]).all()


def test_pipeline_puts_pst_on_ten_minute_and_plt_on_two_hour_values():
    pipeline = Pipeline(MetrologySettings(system_type="SINGLE"))
    meter = pipeline.flicker.meter
    for k in range(12):
        meter.history[k * 600 * NS] = np.array([0.5 + 0.1 * (k == 3), 0.0, 0.0])
    ten = Interval("10min", 3 * 600 * NS, 4 * 600 * NS, 600.0, 30000)
    pipeline.flicker.annotate(ten)
    assert ten.values["pst"][0] == pytest.approx(0.6) and np.isnan(ten.values["pst"][1:]).all()
    two = Interval("2h", 0, 7200 * NS, 7200.0, 360000)
    pipeline.flicker.annotate(two)
    assert two.values["plt"][0] == pytest.approx(((11 * 0.125 + 0.216) / 12) ** (1 / 3))
    assert np.isnan(two.values["plt"][1:]).all()      # phases b and c absent in a single-phase system
