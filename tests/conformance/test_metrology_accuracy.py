"""Accuracy of the metrology pipeline through the simulated 24-bit ADC, against analytic truth.

The measurements come from tools/gendocs_metrology.py, the same code that writes docs/accuracy.md.
Limits (four to ten times tighter than the JEMStar II figures, SPEC §2):
active energy 0.02 % for I >= 5 % In and 0.05 % below; reactive energy 0.05 %; V and I RMS of the
10/12-cycle values 0.01 % (for currents from 10 % In: below that the ADC noise floor of the model,
~53 codes rms, is the limit and the figure is printed); 10-s frequency 0.5 mHz steady and 5 mHz during
a 1 Hz/s ramp; harmonic magnitudes 0.5 % of reading above 1 % of nominal and 0.005 % of nominal below;
harmonic phase angles 0.05°.
"""
import pytest

from tools import gendocs_metrology as acc


@pytest.fixture(scope="module")
def sweep():
    return acc.energy_sweep()


def test_active_and_reactive_energy_at_every_load_point(sweep):
    for p in sweep:
        print(f"{p.f:4.0f} Hz  harmonics={'yes' if p.harmonics else 'no '}  PF {p.pf:5s} {p.load_pct:4g} % In: "
              f"Wh {p.wh_err_pct:+.5f} %  varh {p.varh_err_pct:+.5f} %  V {p.v_rms_err_pct:.5f} %  "
              f"I {p.i_rms_err_pct:.5f} %")
    bad = [p for p in sweep if abs(p.wh_err_pct) > p.wh_limit or abs(p.varh_err_pct) > acc.REACTIVE_LIMIT_PCT]
    assert not bad, bad


def test_rms_of_ten_twelve_cycle_values(sweep):
    worst_v = max(p.v_rms_err_pct for p in sweep)
    worst_i = max(p.i_rms_err_pct for p in sweep if p.load_pct >= 10)
    worst_i_low = max(p.i_rms_err_pct for p in sweep if p.load_pct < 10)
    print(f"V RMS worst {worst_v:.5f} %, I RMS worst {worst_i:.5f} % (>= 10 % In), "
          f"{worst_i_low:.5f} % (1..5 % In, ADC noise floor)")
    assert worst_v <= acc.RMS_LIMIT_PCT and worst_i <= acc.RMS_LIMIT_PCT


@pytest.mark.parametrize("f0", acc.FREQS)
def test_ten_second_frequency_steady(f0):
    got, true = acc.frequency_point(f0, 0.0)
    print(f"10-s frequency at {f0:g} Hz: {got:.7f} Hz, error {abs(got - true) * 1e3:.5f} mHz")
    assert abs(got - true) <= acc.F_STEADY_LIMIT_HZ


def test_ten_second_frequency_during_a_1_hz_per_s_ramp():
    got, true = acc.frequency_point(44.0, 1.0)
    print(f"10-s frequency during the ramp: {got:.6f} Hz, true {true:.6f} Hz, error {abs(got - true) * 1e3:.4f} mHz")
    assert abs(got - true) <= acc.F_RAMP_LIMIT_HZ


@pytest.mark.parametrize("f", [50.0, 60.0])
def test_harmonic_magnitudes_and_angles(f):
    for order, true, got, err, ang in acc.harmonic_point(f):
        big = true >= 0.01 * acc.V_NOM
        print(f"{f:g} Hz order {order:2d}: true {true:8.4f} V measured {got:8.4f} V, error {err:+.5f} % of "
              f"{'reading' if big else 'nominal'}, angle error {ang:+.5f}°")
        assert abs(err) <= (acc.HARM_REL_LIMIT_PCT if big else acc.HARM_ABS_LIMIT_PCT)
        assert abs(ang) <= acc.ANGLE_LIMIT_DEG
