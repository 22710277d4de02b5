"""RMS, power, PF and quadrants for every system type, through the pipeline, against analytic truth."""
import math

import numpy as np
import pytest

from metrology.pipeline import Pipeline
from metrology.power import compute_power, quadrant, signed_pf
from metrology.settings import MetrologySettings
from tests.conformance.signals import Channel, ThreePhase, balanced, feed

REL = 2e-9   # analytic signals without noise: only interpolation and float rounding remain


def last_second(settings, sig, seconds=2.2):
    pl = Pipeline(settings)
    secs = [s for r in feed(pl, sig, seconds) for s in r.seconds]
    return secs[-1].values


@pytest.mark.parametrize("f0", [50.0, 60.0])
@pytest.mark.parametrize("phi", [0.0, 60.0, -36.87, 120.0, -150.0])
def test_four_wire_wye(f0, phi):
    sig = balanced(230.0, 5.0, phi, f0=f0)
    v = last_second(MetrologySettings(nominal_frequency=f0), sig)
    p = 230 * 5 * math.cos(math.radians(phi))
    q = 230 * 5 * math.sin(math.radians(phi))
    np.testing.assert_allclose(v["v_ln"], 230.0, rtol=REL)
    np.testing.assert_allclose(v["v_ll"], 230.0 * math.sqrt(3), rtol=REL)
    np.testing.assert_allclose(v["i"], 5.0, rtol=REL)
    np.testing.assert_allclose(v["p"], [p, p, p, 3 * p], rtol=REL, atol=1e-6)
    np.testing.assert_allclose(v["q"], [q, q, q, 3 * q], rtol=REL, atol=1e-6)
    np.testing.assert_allclose(v["s"], [1150, 1150, 1150, 3450], rtol=REL)
    np.testing.assert_allclose(v["s_vect"][3], 3450, rtol=REL)
    quad = 1 if p >= 0 and q >= 0 else 2 if q >= 0 else 3 if p < 0 else 4
    if abs(q) > 1:                    # at PF 1 the var sign is rounding noise
        assert v["quadrant"][3] == quad
    # IEEE: positive lagging (Q1, Q3), negative leading (Q2, Q4)
    if abs(q) > 1:
        assert v["pf"][3] == pytest.approx(abs(math.cos(math.radians(phi))) * (1 if quad in (1, 3) else -1), abs=1e-9)
    assert v["freq"][0] == pytest.approx(f0, abs=1e-6)
    np.testing.assert_allclose(v["i_res"], 0.0, atol=1e-6)


def test_iec_power_factor_sign_follows_active_power():
    sig = balanced(230.0, 5.0, -150.0)          # received, capacitive: quadrant 3 / IEEE +, IEC -
    v = last_second(MetrologySettings(pf_convention="IEC"), sig)
    assert v["pf"][3] == pytest.approx(-math.cos(math.radians(30)), abs=1e-9)


def to_delta(x):
    out = x.copy()
    va, vb, vc = x[:, 1], x[:, 3], x[:, 5]
    out[:, 1], out[:, 3], out[:, 5] = va - vb, 0.0, vc - vb
    return out


def test_delta_two_line_voltages_give_the_blondel_total():
    sig = balanced(230.0, 5.0, 25.0, i_harm=[(5, 0.2, 10.0)], v_harm=[(5, 0.03, 40.0)])
    pl = Pipeline(MetrologySettings(system_type="DELTA", nominal_voltage=400.0))
    secs = [s for r in feed(pl, sig, 2.2, transform=to_delta) for s in r.seconds]
    v = secs[-1].values
    from tests.conformance.signals import active_power
    p_total = sum(active_power(sig.channels["V" + ph], sig.channels["I" + ph]) for ph in "ABC")
    q_total = 3 * 230 * 5 * math.sin(math.radians(25))
    assert v["p"][3] == pytest.approx(p_total, rel=1e-8)
    assert v["q"][3] == pytest.approx(q_total, rel=1e-8)
    np.testing.assert_allclose(v["v_ll"], math.sqrt(3) * sig.channels["VA"].rms(), rtol=1e-6)


def single(v_rms, i_rms, phi, f0=50.0):
    s = ThreePhase(f0=f0)
    s.channels["VA"] = Channel([(1, v_rms, -90.0)])
    s.channels["IA"] = Channel([(1, i_rms, -90.0 - phi)])
    return s


def test_single_phase():
    v = last_second(MetrologySettings(system_type="SINGLE", nominal_voltage=120.0),
                    single(120.0, 10.0, 30.0))
    assert v["p"][0] == pytest.approx(1200 * math.cos(math.radians(30)), rel=REL)
    assert v["p"][3] == pytest.approx(v["p"][0], rel=1e-12)
    assert v["p"][1] == 0 and v["i"][1] == 0
    # one phase has no unbalance: u0 and u2 are NaN, not the 100 % its two empty phases would make them
    assert all(math.isnan(v[k][0]) for k in ("v_u0", "v_u2", "i_u0", "i_u2") + ("v_unbal", "i_unbal")), v


def test_two_line_without_neutral():
    # 240 V line to line, one current; virtual neutral splits the power in two equal halves
    v = last_second(MetrologySettings(system_type="2L", nominal_voltage=240.0), single(240.0, 10.0, 30.0))
    p = 2400 * math.cos(math.radians(30))
    assert v["p"][3] == pytest.approx(p, rel=REL)
    np.testing.assert_allclose(v["p"][:2], p / 2, rtol=REL)
    assert v["v_ll"][0] == pytest.approx(240.0, rel=REL)
    assert all(math.isnan(v[k][0]) for k in ("v_u0", "v_u2", "i_u0", "i_u2")), v


def test_split_phase_with_neutral():
    s = ThreePhase(f0=60.0)
    s.channels["VA"] = Channel([(1, 120.0, -90.0)])
    s.channels["VB"] = Channel([(1, 120.0, 90.0)])
    s.channels["IA"] = Channel([(1, 10.0, -90.0 - 20.0)])
    s.channels["IB"] = Channel([(1, 4.0, 90.0 - 20.0)])
    s.channels["IN"] = Channel([(1, 6.0, -90.0 - 20.0)])
    v = last_second(MetrologySettings(system_type="2L+1n", nominal_voltage=120.0, nominal_frequency=60.0), s)
    assert v["p"][3] == pytest.approx(120 * 14 * math.cos(math.radians(20)), rel=REL)
    assert v["v_ll"][0] == pytest.approx(240.0, rel=REL)
    assert v["i_n"][0] == pytest.approx(6.0, rel=REL)


def test_pt_ct_ratios_and_polarity_inversion():
    sig = balanced(63.5, 1.0, 0.0)
    flip_ia = lambda x: x * np.array([-1, 1, 1, 1, 1, 1, 1])  # noqa: E731  (CT A wired backwards)
    st = MetrologySettings(pt_primary=11000, pt_secondary=110, ct_primary=400, ct_secondary=5,
                           invert=(True,) + (False,) * 6, nominal_voltage=6350.0, nominal_current=80.0)
    pl = Pipeline(st)
    v = [s for r in feed(pl, sig, 2.2, transform=flip_ia) for s in r.seconds][-1].values
    np.testing.assert_allclose(v["v_ln"], 6350.0, rtol=REL)
    np.testing.assert_allclose(v["i"], 80.0, rtol=REL)
    assert v["p"][0] == pytest.approx(6350 * 80, rel=REL)


def test_phase_angle_correction_advances_the_current():
    sig = balanced(230.0, 5.0, 0.5)        # the CT lags by 0.5°: correct it
    st = MetrologySettings(phase_correction_deg=(0.5, 0, 0.5, 0, 0.5, 0, 0))
    v = last_second(st, sig)
    np.testing.assert_allclose(v["q"][:3], 0.0, atol=1150 * 1e-7)


def test_no_creep_below_the_threshold():
    sig = balanced(230.0, 5.0 * 0.0004, 0.0)      # 0.04 % of In, below the 0.05 % creep threshold
    v = last_second(MetrologySettings(), sig)
    assert np.all(v["p"] == 0) and np.all(v["q"] == 0) and np.all(v["s"] == 0)
    sig = balanced(230.0, 5.0 * 0.001, 0.0)       # starting current of class 0.2S (0.1 % In) registers
    v = last_second(MetrologySettings(), sig)
    assert v["p"][3] == pytest.approx(3 * 230 * 0.005, rel=1e-6)


def test_power_functions_on_arrays():
    assert list(quadrant(np.array([1, -1, -1, 1]), np.array([1, 1, -1, -1]))) == [1, 2, 3, 4]
    pf = signed_pf(np.array([0.5, -0.5]), np.array([-0.8, -0.8]), np.array([1.0, 1.0]), "IEEE")
    assert list(pf) == [-0.5, 0.5]
    pw = compute_power(np.full(3, 100.0), np.full(3, 1.0), np.full(3, 6.0), np.full(3, 6 + 8j),
                       np.array([True, True, False]), 0.0, "IEEE")
    assert list(pw.p) == [6, 6, 0, 12] and list(pw.q) == [8, 8, 0, 16]
    assert pw.qh[3] == pytest.approx(6 + 16 * math.sqrt(3) / 2)


@pytest.mark.parametrize("convention", ["IEEE", "IEC"])
def test_interval_power_is_compute_power_on_plain_numbers(convention):
    # the per-interval path computes in Python floats; it must give what the array path gives
    from metrology.power import interval_power

    rng = np.random.default_rng(11)
    for _ in range(200):
        v_ms = rng.uniform(0, 300, 3) ** 2
        i_ms = rng.choice([0.0, 1e-8, 0.3, 25.0], 3) * rng.uniform(0.5, 1.5, 3)
        vi = rng.normal(0, 1, 3) * np.sqrt(v_ms * i_ms)
        s1 = (rng.normal(0, 1, 3) + 1j * rng.normal(0, 1, 3)) * np.sqrt(v_ms * i_ms) / 2
        present = rng.random(3) < 0.8
        want = compute_power(v_ms, i_ms, vi, s1, present, 1e-3, convention)
        got = interval_power(v_ms.tolist(), i_ms.tolist(), vi.tolist(), s1.tolist(), present.tolist(), 1e-3,
                             convention)
        for name in want.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
