"""The synthetic three-phase generator: conventions and analytic truth, checked against its own samples."""
from __future__ import annotations

import numpy as np
import pytest

from hal.sim.signals import (
    Flicker,
    Frequency,
    Harmonic,
    Interharmonic,
    RapidVoltageChange,
    ThreePhase,
    Transient,
    VoltageEvent,
    day_profile,
    steady,
)

FS = 32000.0


def rms(x):
    return np.sqrt(np.mean(x**2, axis=0))


def test_phase_conventions_va_on_x_axis_abc_rotation():
    s = steady(230.0, 5.0, pf_angle_deg=30.0)
    x = s.sample(np.array([0.0]))[0]
    assert x[1] == pytest.approx(230 * np.sqrt(2))                     # Va at +x: peak at t = 0
    assert x[3] == pytest.approx(230 * np.sqrt(2) * np.cos(np.deg2rad(-120)))
    t = np.arange(3200) / FS                                            # 5 cycles
    v = s.sample(t)
    # B lags A by 120 deg: its peak comes 1/3 cycle later
    assert np.argmax(v[:640, 3]) == pytest.approx(640 / 3, abs=1)
    truth = s.truth(0.0)["a"]
    assert np.mean(v[:, 0] * v[:, 1]) == pytest.approx(truth["p"], rel=1e-9)
    assert truth["pf"] == pytest.approx(np.cos(np.deg2rad(30)))
    assert truth["q1"] > 0                                              # lagging current: positive var
    assert np.abs(v[:, 6]).max() < 1e-9                                 # balanced: residual neutral is zero


def test_harmonics_interharmonics_truth_matches_samples():
    s = ThreePhase(v_harmonics=(Harmonic(5, 0.06, 30.0), Harmonic(3, 0.02)),
                   i_harmonics=(Harmonic(5, 0.2, -40.0),), v_interharmonics=(Interharmonic(175.0, 0.01),))
    t = np.arange(32000) / FS                                           # 1 s: 50 cycles, interharmonic periodic
    x = s.sample(t)
    tr = s.truth(0.0)
    assert rms(x)[1] == pytest.approx(tr["a"]["v_rms"], rel=1e-9)
    assert rms(x)[0] == pytest.approx(tr["a"]["i_rms"], rel=1e-9)
    assert np.mean(x[:, 0] * x[:, 1]) == pytest.approx(tr["a"]["p"], rel=1e-9)
    assert tr["a"]["thd_v"] == pytest.approx(np.hypot(0.06, 0.02))
    # third harmonics of a balanced set are in phase (zero sequence): they add in VA+VB+VC; the fifth
    # cancels; the 175 Hz interharmonic (3.5 x the angles: 0, -60, +60 deg) adds to twice one phase
    vsum = x[:, 1] + x[:, 3] + x[:, 5]
    assert rms(vsum) == pytest.approx(np.hypot(3 * 230 * 0.02, 2 * 230 * 0.01), rel=1e-6)


def test_frequency_ramp_and_step_are_phase_continuous():
    for f in (Frequency(50.0, "ramp", 51.0, 1.0, 2.0), Frequency(50.0, "step", 49.5, 1.0)):
        t = np.arange(int(3 * FS)) / FS
        cyc = f.cycles(t)
        assert np.all(np.abs(np.diff(cyc) - f.at(t[:-1]) / FS) < 1e-3 / FS * 60)   # no jump in phase
    assert Frequency(50.0, "ramp", 51.0, 1.0, 2.0).cycles(np.array([3.0]))[0] == pytest.approx(50 + 50.5 + 51)


def test_sag_with_point_on_wave_and_duration_in_half_cycles():
    ev = VoltageEvent("sag", 0.5, start_s=0.1, duration_s=0.1, phases="A", point_on_wave_deg=90.0)
    s = ThreePhase(events=(ev,))
    a, b = s.event_window(ev)
    assert (a * 50) % 1.0 == pytest.approx(0.25)                         # starts at 90 deg of Va
    assert (b - a) == pytest.approx(0.1)
    assert s.truth(a + 0.05)["a"]["v_rms"] == pytest.approx(115.0)
    assert s.truth(a + 0.05)["b"]["v_rms"] == pytest.approx(230.0)


def test_swell_interruption_rvc_flicker_transients():
    s = ThreePhase(events=(VoltageEvent("swell", 1.2, 0.0, 0.1, "B"), VoltageEvent("interruption", 0.0, 0.2, 0.1),
                           RapidVoltageChange(0.05, 0.4, 0.02), Flicker(0.02, 8.8, "rectangular", 0.6, 1.0, "C"),
                           Transient("oscillatory", 500.0, 1.8, "A"), Transient("impulsive", 2000.0, 1.9, "A")))
    assert s.truth(0.05)["b"]["v_rms"] == pytest.approx(276.0)
    assert s.truth(0.25)["a"]["v_rms"] == 0.0
    assert s.truth(0.5)["a"]["v_rms"] == pytest.approx(230 * 1.05)
    env = s.envelope(2, np.array([0.6 + 0.01, 0.6 + 0.07]))
    assert env == pytest.approx([1.05 * 1.01, 1.05 * 0.99])
    base = ThreePhase(events=(RapidVoltageChange(0.05, 0.4, 0.02),))
    t = 1.9 + np.array([0.0, 1.2e-6 / 2.47 * np.log(50 / 1.2 * 2.47 / 0.69), 1e-3])
    d = s.sample(t)[:, 1] - base.sample(t)[:, 1]
    assert d[1] == pytest.approx(2000.0, rel=0.05) and abs(d[2]) < 1.0 + 500 * np.exp(-200e-3 / 0.5e-3) + 1e-6


def test_noise_is_deterministic_and_chunk_independent():
    s = ThreePhase(noise_rms=(0.01,) * 7, seed=9)
    whole = s.sample_range(1000, 9000, FS)
    parts = np.concatenate([s.sample_range(1000, 4000, FS), s.sample_range(5000, 5000, FS)])
    assert np.array_equal(whole, parts)
    assert rms(whole - s.sample((1000 + np.arange(9000)) / FS)) == pytest.approx(0.01, rel=0.05)


def test_day_profile_changes_load_pf_and_harmonics():
    d = day_profile(time_scale=3600.0)                                    # a day in 24 s
    night, noon = d.truth(17.0)["a"], d.truth(4.0)["a"]                    # 01:00 and 12:00
    assert noon["i_rms"] > 2.5 * night["i_rms"]
    assert night["thd_i"] > noon["thd_i"] and noon["pf"] < 0.95
